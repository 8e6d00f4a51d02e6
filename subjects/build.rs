//! Compiles `proto/**/*.proto` with prost, through protox so no system `protoc` is needed,
//! and generates proto3 JSON (serde) impls with pbjson.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("proto");
    let mut files = Vec::new();
    collect(&root, &mut files)?;
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    println!("cargo:rerun-if-changed=proto");

    let descriptors = protox::compile(&files, [&root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out.join("soulchat_descriptor.bin");
    fs::write(&descriptor_path, prost::Message::encode_to_vec(&descriptors))?;

    prost_build::Config::new()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_protos(&files, &[&root])?;

    pbjson_build::Builder::new()
        .register_descriptors(&fs::read(&descriptor_path)?)?
        .preserve_proto_field_names()
        .build(&[".soulchat"])?;
    Ok(())
}

fn collect(dir: &PathBuf, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            files.push(path);
        }
    }
    Ok(())
}
