import { useEffect, useState } from 'preact/hooks';
import { Api, ApiError, type Preferences, type Report } from './api';
import { Dialog, DialogActions } from './Sidebar';
import { Icon } from './icons';
import {
  describe,
  loadNotifications,
  markNotificationsRead,
  openConversation,
  saveProfile,
  savePreferences,
  state,
  title,
  toast,
} from './store';

export function NotificationsPanel(props: { onClose: () => void }) {
  useEffect(() => void loadNotifications(), []);
  return (
    <section class="panel" aria-label="Notifications panel">
      <header class="row">
        <h2 class="grow">Notifications</h2>
        <button type="button" onClick={() => void markNotificationsRead('all').catch((e) => toast(describe(e)))}>
          Mark all read
        </button>
        <button type="button" aria-label="Close notifications" onClick={props.onClose}>
          <Icon name="close" />
        </button>
      </header>
      <ul aria-label="Notification list" class="notifications">
        {state.notifications.length === 0 && <li class="muted">Nothing yet</li>}
        {state.notifications.map((n) => (
          <li key={n.id} class={n.read ? 'read' : 'unread'}>
            <button
              type="button"
              class="notification"
              onClick={() => {
                if (!n.read) void markNotificationsRead([n.id]).catch(() => {});
                const cid = n.data?.conversation_id;
                if (cid && state.conversations.has(cid)) {
                  void openConversation(cid);
                  props.onClose();
                }
              }}
            >
              <strong>{n.title}</strong>
              <span>{n.body}</span>
              <small class="muted">
                {new Date(n.created_at).toLocaleString()}
                {!n.read && ' · unread'}
              </small>
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

/** Open reports, for administrators (anyone else is told so by the server's 403). */
export function ReportsPanel(props: { onClose: () => void }) {
  const [reports, setReports] = useState<Report[] | null>(null);
  const [refusal, setRefusal] = useState<string | null>(null);
  const load = () =>
    Api.reports()
      .then((r) => setReports(r.reports))
      .catch((e) => setRefusal(e instanceof ApiError && e.status === 403 ? 'Only administrators see reports.' : describe(e)));
  useEffect(() => void load(), []);
  const resolve = async (r: Report, action: 'delete' | 'dismiss' | 'suspend') => {
    const body: Parameters<typeof Api.resolveReport>[1] = { action };
    if (action === 'suspend') {
      const days = Number(prompt(`Suspend ${r.author ?? 'the author'} for how many days?`, '7'));
      if (!(days > 0)) return;
      body.until = new Date(Date.now() + days * 86_400_000).toISOString();
      body.reason = r.reason;
    }
    await Api.resolveReport(r.id, body).catch((e) => toast(describe(e)));
    await load();
  };
  return (
    <section class="panel" aria-label="Reports panel">
      <header class="row">
        <h2 class="grow">Reports</h2>
        <button type="button" aria-label="Close reports" onClick={props.onClose}>
          <Icon name="close" />
        </button>
      </header>
      {refusal && <p class="muted">{refusal}</p>}
      <ul aria-label="Report list" class="notifications">
        {reports?.length === 0 && <li class="muted">No open reports</li>}
        {reports?.map((r) => (
          <li key={r.id}>
            <div class="notification">
              <strong>
                {r.reporter ?? 'Someone'} reported {r.author ?? 'someone'}: {r.reason}
              </strong>
              <span>{r.message?.deleted ? '(deleted)' : r.message?.content}</span>
              <small class="muted">{new Date(r.created_at).toLocaleString()}</small>
              <span class="row">
                <button type="button" onClick={() => void resolve(r, 'delete')}>
                  Delete message
                </button>
                <button type="button" onClick={() => void resolve(r, 'dismiss')}>
                  Dismiss
                </button>
                <button type="button" onClick={() => void resolve(r, 'suspend')}>
                  Suspend author
                </button>
              </span>
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function ProfileDialog(props: { onClose: () => void }) {
  const me = state.user!;
  const [bio, setBio] = useState(me.bio ?? '');
  const [image, setImage] = useState(me.image ?? '');
  const [error, setError] = useState<string | null>(null);
  return (
    <Dialog title="Profile" onClose={props.onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await saveProfile(bio.trim(), image.trim());
            toast('Profile saved');
            props.onClose();
          } catch (err) {
            setError(describe(err));
          }
        }}
      >
        <p>
          Signed in as <strong>{me.username}</strong> ({me.email})
        </p>
        <label>
          Bio
          <textarea rows={3} value={bio} onInput={(e) => setBio(e.currentTarget.value)} />
        </label>
        <label>
          Image URL
          <input type="url" placeholder="https://…" value={image} onInput={(e) => setImage(e.currentTarget.value)} />
        </label>
        <DialogActions error={error} submit="Save" onCancel={props.onClose} />
      </form>
    </Dialog>
  );
}

export function SettingsDialog(props: { onClose: () => void }) {
  const [p, setP] = useState<Preferences | null>(state.preferences);
  const [pushState, setPushState] = useState<string>('');
  useEffect(() => {
    Api.preferences()
      .then((r) => setP(r.preferences))
      .catch(() => {});
    void currentPush().then((s) => setPushState(s ? 'This browser receives push notifications.' : ''));
  }, []);
  if (!p) return null;
  const flag = (k: 'in_app' | 'push' | 'email' | 'sms', label: string) => (
    <label class="check">
      <input type="checkbox" checked={p[k]} onChange={(e) => setP({ ...p, [k]: e.currentTarget.checked })} />
      {label}
    </label>
  );
  return (
    <Dialog title="Settings" onClose={props.onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await savePreferences(p);
            toast('Preferences saved');
            props.onClose();
          } catch (err) {
            toast(describe(err));
          }
        }}
      >
        <fieldset>
          <legend>Notify me by</legend>
          {flag('in_app', 'In the app')}
          {flag('push', 'Push')}
          {flag('email', 'Email')}
          {flag('sms', 'SMS')}
        </fieldset>
        <fieldset>
          <legend>Muted conversations</legend>
          {p.muted_conversations.length === 0 && <p class="muted">None</p>}
          {p.muted_conversations.map((id) => {
            const c = state.conversations.get(id);
            return (
              <label class="check" key={id}>
                <input
                  type="checkbox"
                  checked
                  onChange={() => setP({ ...p, muted_conversations: p.muted_conversations.filter((x) => x !== id) })}
                />
                {c ? title(c) : id}
              </label>
            );
          })}
        </fieldset>
        <fieldset>
          <legend>Web Push on this browser</legend>
          <div class="row">
            <button
              type="button"
              onClick={async () => {
                try {
                  setPushState(await enablePush());
                  if (await currentPush()) setP({ ...p, push: true });
                } catch (err) {
                  setPushState(describe(err));
                }
              }}
            >
              Enable push
            </button>
            <button
              type="button"
              onClick={async () => {
                try {
                  setPushState(await disablePush());
                } catch (err) {
                  setPushState(describe(err));
                }
              }}
            >
              Disable push
            </button>
          </div>
          {pushState && <p role="status">{pushState}</p>}
        </fieldset>
        <div class="row end">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary">
            Save
          </button>
        </div>
      </form>
    </Dialog>
  );
}

// ---- Web Push ----

function pushSupported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

async function currentPush(): Promise<PushSubscription | null> {
  if (!pushSupported()) return null;
  const reg = await navigator.serviceWorker.getRegistration('/');
  return (await reg?.pushManager.getSubscription()) ?? null;
}

function keyBytes(b64url: string): Uint8Array<ArrayBuffer> {
  const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (b64url.length % 4)) % 4);
  const raw = atob(b64);
  const out = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** Opt-in: the server's VAPID public key, the service worker, permission, then the subscription. */
async function enablePush(): Promise<string> {
  if (!pushSupported()) return 'This browser does not support Web Push (it needs HTTPS or localhost).';
  let key: string;
  try {
    key = (await Api.pushKey()).public_key;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 503)) return 'This server does not send push notifications.';
    throw e;
  }
  const permission = await window.Notification.requestPermission();
  if (permission !== 'granted') return 'Notifications are blocked for this site.';
  const reg = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  await navigator.serviceWorker.ready;
  const sub =
    (await reg.pushManager.getSubscription()) ??
    (await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) }));
  await Api.subscribePush(sub.toJSON());
  if (state.preferences && !state.preferences.push) await savePreferences({ ...state.preferences, push: true });
  return 'This browser receives push notifications.';
}

async function disablePush(): Promise<string> {
  const sub = await currentPush();
  if (!sub) return 'Push was not enabled on this browser.';
  await Api.unsubscribePush(sub.endpoint).catch(() => {});
  await sub.unsubscribe();
  return 'Push disabled on this browser.';
}
