//! The settings that `deploy/k8s` and `docker-compose.yml` pass to SoulChat's containers are
//! ones this binary reads (a misspelt variable would be ignored in silence), and compose runs
//! the same roles with the same settings as the Kubernetes base.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use serde::Deserialize;
use serde_norway::Value;

/// Variables the binary reads outside clap: the log filter (`tracing_subscriber::EnvFilter`) and
/// the OpenTelemetry variables that `soulchat_runtime::telemetry` reads itself (endpoint,
/// protocol, service name) or leaves to the OTLP exporter and SDK (headers, resource
/// attributes, sampler).
const READ_OUTSIDE_CLAP: [&str; 10] = [
    "RUST_LOG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
];

/// One container running the soulchat image: its role and the settings it is given, each with
/// its value when the file spells it (`None`: from a Secret).
#[derive(Debug)]
struct Container {
    file: PathBuf,
    role: String,
    env: BTreeMap<String, Option<String>>,
}

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every setting's environment variable, over all subcommands, and those read outside clap.
fn known_settings() -> BTreeSet<String> {
    fn walk(command: &clap::Command, known: &mut BTreeSet<String>) {
        known.extend(command.get_arguments().filter_map(|arg| arg.get_env()).map(|env| env.to_string_lossy().into()));
        command.get_subcommands().for_each(|sub| walk(sub, known));
    }
    let mut known = READ_OUTSIDE_CLAP.map(String::from).into();
    walk(&crate::Cli::command(), &mut known);
    known
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The documents of a YAML file, anchors and merge keys (`<<`) resolved.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            let mut value = Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            value.apply_merge().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            value
        })
        .collect()
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `soulchat`, `soulchat:dev`, `registry.example.com/soulchat:0.1.0`.
fn is_soulchat_image(image: &Value) -> bool {
    let image = image.as_str().unwrap_or_default();
    let name = image.rsplit('/').next().unwrap_or_default();
    name.split(':').next() == Some("soulchat")
}

/// The containers of the workloads under `dir` that run the soulchat image, with what their
/// `env` lists and the ConfigMaps of their `envFrom` (as every file under `dir` defines or
/// patches them) give them.
fn kubernetes(dir: &Path) -> Vec<Container> {
    let documents: Vec<(PathBuf, Value)> = yaml_files(dir)
        .into_iter()
        .flat_map(|file| documents(&file).into_iter().map(move |doc| (file.clone(), doc)))
        .collect();
    let mut config_maps: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (_, doc) in documents.iter().filter(|(_, doc)| doc["kind"] == "ConfigMap") {
        let name = doc["metadata"]["name"].as_str().expect("a ConfigMap has a name").to_owned();
        let data = doc["data"].as_mapping().into_iter().flatten();
        config_maps
            .entry(name)
            .or_default()
            .extend(data.map(|(k, v)| (scalar(k).unwrap(), scalar(v).unwrap_or_default())));
    }
    let mut containers = Vec::new();
    for (file, doc) in &documents {
        let pod = match &doc["spec"]["jobTemplate"] {
            Value::Null => &doc["spec"]["template"]["spec"],
            job => &job["spec"]["template"]["spec"],
        };
        let role =
            doc["metadata"]["labels"]["app.kubernetes.io/component"].as_str().or(doc["metadata"]["name"].as_str());
        let listed = pod["initContainers"].as_sequence().into_iter().chain(pod["containers"].as_sequence()).flatten();
        for container in listed.filter(|c| is_soulchat_image(&c["image"])) {
            let mut env = BTreeMap::new();
            for source in container["envFrom"].as_sequence().into_iter().flatten() {
                let name = source["configMapRef"]["name"].as_str().unwrap_or_else(|| {
                    panic!(
                        "{}: envFrom other than a ConfigMap hides which settings it passes; list them in env",
                        file.display()
                    )
                });
                let data =
                    config_maps.get(name).unwrap_or_else(|| panic!("{}: no ConfigMap {name} here", file.display()));
                env.extend(data.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
            }
            for var in container["env"].as_sequence().into_iter().flatten() {
                env.insert(var["name"].as_str().expect("an env entry has a name").to_owned(), scalar(&var["value"]));
            }
            containers.push(Container {
                file: file.clone(),
                role: role.expect("a workload has a name").to_owned(),
                env,
            });
        }
    }
    containers
}

/// The compose services that run the soulchat image, by service name.
fn compose(file: &Path) -> Vec<Container> {
    let [compose] = <[Value; 1]>::try_from(documents(file)).expect("one document");
    let services = compose["services"].as_mapping().expect("services");
    let soulchat = services.iter().filter(|(_, service)| is_soulchat_image(&service["image"]));
    soulchat
        .map(|(name, service)| {
            let env = match &service["environment"] {
                Value::Mapping(vars) => vars.iter().map(|(k, v)| (scalar(k).unwrap(), scalar(v))).collect(),
                Value::Sequence(vars) => vars
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|var| match var.split_once('=') {
                        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                        None => (var.to_owned(), None),
                    })
                    .collect(),
                _ => BTreeMap::new(),
            };
            Container { file: file.to_owned(), role: scalar(name).unwrap(), env }
        })
        .collect()
}

#[test]
fn deployments_pass_only_settings_the_binary_knows() {
    let known = known_settings();
    assert!(known.contains("SOULCHAT_HTTP_ADDR") && known.contains("NATS_URL"), "clap's env names: {known:?}");
    let kubernetes = kubernetes(&repository().join("deploy/k8s"));
    let compose = compose(&repository().join("docker-compose.yml"));
    // Six roles in each (gateway, four workers, migrate): the test cannot pass on nothing.
    assert_eq!((kubernetes.len(), compose.len()), (6, 6), "soulchat containers found: {kubernetes:#?} {compose:#?}");
    let unknown: Vec<String> = kubernetes
        .iter()
        .chain(&compose)
        .flat_map(|c| c.env.keys().filter(|name| !known.contains(*name)).map(move |name| (c, name)))
        .map(|(c, name)| {
            format!("{} ({}): {name}", c.file.strip_prefix(repository()).unwrap_or(&c.file).display(), c.role)
        })
        .collect();
    assert!(unknown.is_empty(), "settings the soulchat binary does not know:\n{}", unknown.join("\n"));
}

#[test]
fn compose_runs_the_kubernetes_base() {
    let base: BTreeMap<String, Container> =
        kubernetes(&repository().join("deploy/k8s/base")).into_iter().map(|c| (c.role.clone(), c)).collect();
    let compose: BTreeMap<String, Container> =
        compose(&repository().join("docker-compose.yml")).into_iter().map(|c| (c.role.clone(), c)).collect();
    assert_eq!(compose.keys().collect::<Vec<_>>(), base.keys().collect::<Vec<_>>(), "the same roles");
    for (role, k8s) in &base {
        let composed = &compose[role];
        assert_eq!(
            composed.env.keys().collect::<Vec<_>>(),
            k8s.env.keys().collect::<Vec<_>>(),
            "{role}: the same settings"
        );
        for (name, value) in k8s.env.iter().filter_map(|(name, value)| Some((name, value.as_ref()?))) {
            // Compose may let the environment override it: `${NAME:-<the same default>}`.
            let composed = composed.env[name].as_deref().unwrap_or_default();
            assert!(
                composed == value || composed == format!("${{{name}:-{value}}}"),
                "{role}: {name} is {value:?} in Kubernetes, {composed:?} in compose"
            );
        }
    }
}
