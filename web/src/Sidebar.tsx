import { useEffect, useRef, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { Icon } from './icons';
import { Api, ApiError, type Message, type Profile } from './api';
import {
  createGroup,
  describe,
  loadBlocked,
  logOut,
  openConversation,
  peer,
  searchPeople,
  sortedConversations,
  startDirect,
  state,
  title,
  toggleBlock,
  toggleFollow,
} from './store';

export function Sidebar(props: {
  onNotifications: () => void;
  notificationsOpen: boolean;
  onProfile: () => void;
  onSettings: () => void;
  onReports: () => void;
}) {
  const [dialog, setDialog] = useState<null | 'direct' | 'group'>(null);
  const me = state.user!;
  const unread = state.unreadNotifications;
  return (
    <aside class="sidebar">
      <header class="me">
        <Avatar name={me.username} image={me.image} />
        <strong class="grow ellipsis" data-testid="me" title={me.username}>
          {me.username}
        </strong>
        <button
          type="button"
          class="icon"
          aria-label="Notifications"
          aria-expanded={props.notificationsOpen}
          aria-describedby="notif-count"
          onClick={props.onNotifications}
        >
          <Icon name="bell" />
          {unread > 0 && (
            <span class="badge" aria-hidden="true" data-testid="notification-badge">
              {unread > 99 ? '99+' : unread}
            </span>
          )}
          <span id="notif-count" class="sr-only">
            {unread} unread
          </span>
        </button>
        <button type="button" class="icon" aria-label="Profile" onClick={props.onProfile}>
          <Icon name="user" />
        </button>
        <button type="button" class="icon" aria-label="Settings" onClick={props.onSettings}>
          <Icon name="gear" />
        </button>
        <button type="button" onClick={props.onReports}>
          Reports
        </button>
        <button type="button" onClick={() => void logOut()}>
          Log out
        </button>
      </header>

      <People />
      <MessageSearch />

      <div class="row actions">
        <button type="button" onClick={() => setDialog('direct')}>
          New conversation
        </button>
        <button type="button" onClick={() => setDialog('group')}>
          New group
        </button>
      </div>

      <ul aria-label="Conversations" class="conversations">
        {sortedConversations().map((c) => {
          const who = peer(c);
          const online = who ? state.presence.get(who)?.status === 'online' : false;
          const muted = state.preferences?.muted_conversations.includes(c.id);
          const last = c.last_message;
          return (
            <li key={c.id} class={state.current === c.id ? 'active' : ''}>
              <button
                type="button"
                class="conversation"
                aria-current={state.current === c.id ? 'true' : undefined}
                onClick={() => void openConversation(c.id)}
              >
                <span class="avatar-wrap">
                  <Avatar name={title(c)} />
                  {who && <span class={`dot ${online ? 'online' : ''}`} title={online ? 'online' : 'offline'} />}
                </span>
                <span class="grow text">
                  <span class="name">
                    {title(c)}
                    {muted && (
                      <span class="muted-icon" title="muted">
                        <Icon name="mute" />
                        <span class="sr-only"> (muted)</span>
                      </span>
                    )}
                    {who && <span class="sr-only">{online ? ' (online)' : ' (offline)'}</span>}
                  </span>
                  <span class="last">
                    {last
                      ? `${last.sender === me.username ? 'You: ' : c.kind === 'group' ? `${last.sender}: ` : ''}${last.deleted ? 'message deleted' : last.content || (last.kind === 'image' ? 'Image' : 'File')}`
                      : c.kind === 'group'
                        ? `${c.member_count} members`
                        : 'No messages yet'}
                  </span>
                </span>
                {c.unread_count > 0 && (
                  <span class="badge unread" data-testid="unread">
                    {c.unread_count}
                    <span class="sr-only"> unread</span>
                  </span>
                )}
              </button>
            </li>
          );
        })}
      </ul>

      {dialog === 'direct' && <DirectDialog onClose={() => setDialog(null)} />}
      {dialog === 'group' && <GroupDialog onClose={() => setDialog(null)} />}
    </aside>
  );
}

export function Avatar(props: { name: string; image?: string | null }) {
  const [broken, setBroken] = useState<string | null>(null);
  if (props.image && broken !== props.image)
    return (
      <img class="avatar" src={props.image} alt="" referrerpolicy="no-referrer" onError={() => setBroken(props.image!)} />
    );
  const hue = [...props.name].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) % 360, 7);
  return (
    <span class="avatar" aria-hidden="true" style={{ background: `hsl(${hue} 45% 45%)` }}>
      {props.name.slice(0, 1).toUpperCase()}
    </span>
  );
}

function People() {
  const [q, setQ] = useState('');
  const [busy, setBusy] = useState<string | null>(null);
  useEffect(() => {
    const t = setTimeout(() => void searchPeople(q).catch(() => {}), 250);
    return () => clearTimeout(t);
  }, [q]);
  useEffect(() => void loadBlocked().catch(() => {}), []);
  // Follow, block and unblock: one at a time per person, the button disabled meanwhile.
  const act = (p: Profile, change: (p: Profile) => Promise<void>) => async () => {
    setBusy(p.username);
    await change(p).catch(() => {});
    setBusy(null);
  };
  return (
    <section class="people">
      <label class="sr-label">
        Search people
        <input type="search" placeholder="Search people" value={q} onInput={(e) => setQ(e.currentTarget.value)} />
      </label>
      {q.trim() && (
        <ul aria-label="People" class="people-list">
          {state.search.length === 0 && <li class="muted">Nobody found</li>}
          {state.search
            .filter((p) => p.username !== state.user?.username)
            .map((p) => (
              <li key={p.username}>
                <Avatar name={p.username} image={p.image} />
                <span class="grow">
                  {p.username}
                  {p.bio && <small class="muted"> — {p.bio}</small>}
                </span>
                <button
                  type="button"
                  disabled={busy === p.username}
                  onClick={act(p, toggleFollow)}
                >
                  {p.following ? 'Unfollow' : 'Follow'}
                </button>
                <button
                  type="button"
                  disabled={busy === p.username}
                  onClick={act(p, toggleBlock)}
                >
                  {p.blocked ? 'Unblock' : 'Block'}
                </button>
                <button type="button" onClick={() => void startDirect(p.username).then(() => setQ(''))}>
                  Chat
                </button>
              </li>
            ))}
        </ul>
      )}
      {!q.trim() && state.blocked.length > 0 && (
        <ul aria-label="Blocked people" class="people-list">
          {state.blocked.map((p) => (
            <li key={p.username}>
              <Avatar name={p.username} image={p.image} />
              <span class="grow">
                {p.username} <small class="muted">blocked</small>
              </span>
              <button
                type="button"
                disabled={busy === p.username}
                onClick={act(p, toggleBlock)}
              >
                Unblock
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** Full-text search of the caller's messages; a result opens its conversation. */
function MessageSearch() {
  const [q, setQ] = useState('');
  const [results, setResults] = useState<Message[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    if (!q.trim()) {
      setResults(null);
      setProblem(null);
      return;
    }
    const t = setTimeout(() => {
      Api.searchMessages(q.trim())
        .then((r) => {
          setResults(r.messages);
          setProblem(null);
        })
        .catch((e) => setProblem(e instanceof ApiError && e.errors.q ? `Search ${e.errors.q[0]}` : 'Search failed'));
    }, 300);
    return () => clearTimeout(t);
  }, [q]);
  return (
    <section class="people">
      <label class="sr-label">
        Search messages
        <input type="search" placeholder="Search messages" value={q} onInput={(e) => setQ(e.currentTarget.value)} />
      </label>
      {problem && (
        <p class="muted" role="status">
          {problem}
        </p>
      )}
      {results && (
        <ul aria-label="Message results" class="people-list">
          {results.length === 0 && <li class="muted">No messages found</li>}
          {results.map((m) => {
            const c = state.conversations.get(m.conversation_id);
            return (
              <li key={`${m.conversation_id}:${m.seq}`}>
                <button
                  type="button"
                  class="grow result"
                  onClick={() => void openConversation(m.conversation_id).then(() => setQ(''))}
                >
                  <small class="muted">{c ? title(c) : 'Conversation'} · {m.sender}</small>
                  <span class="ellipsis">{m.content}</span>
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}

export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren; class?: string }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current!;
    if (!d.open) d.showModal();
    const close = () => props.onClose();
    d.addEventListener('close', close);
    return () => d.removeEventListener('close', close);
  }, []);
  const id = `dlg-${props.title.replace(/\W+/g, '-')}`;
  return (
    <dialog ref={ref} aria-labelledby={id} class={props.class}>
      <h2 id={id}>{props.title}</h2>
      {props.children}
    </dialog>
  );
}

/** A dialog form's last lines: its error, if any, then Cancel and the submit button. */
export function DialogActions(props: { error: string | null; submit: string; onCancel: () => void }) {
  return (
    <>
      {props.error && (
        <p class="error" role="alert">
          {props.error}
        </p>
      )}
      <div class="row end">
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="submit" class="primary">
          {props.submit}
        </button>
      </div>
    </>
  );
}

function DirectDialog(props: { onClose: () => void }) {
  const [username, setUsername] = useState('');
  const [error, setError] = useState<string | null>(null);
  return (
    <Dialog title="New conversation" onClose={props.onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await startDirect(username);
            props.onClose();
          } catch (err) {
            setError(describe(err));
          }
        }}
      >
        <label>
          Username
          <input required autoFocus value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
        </label>
        <DialogActions error={error} submit="Start" onCancel={props.onClose} />
      </form>
    </Dialog>
  );
}

function GroupDialog(props: { onClose: () => void }) {
  const [name, setName] = useState('');
  const [members, setMembers] = useState('');
  const [error, setError] = useState<string | null>(null);
  return (
    <Dialog title="New group" onClose={props.onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await createGroup(
              name,
              members
                .split(/[\s,]+/)
                .map((m) => m.trim())
                .filter(Boolean),
            );
            props.onClose();
          } catch (err) {
            setError(describe(err));
          }
        }}
      >
        <label>
          Group name
          <input required autoFocus value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Members
          <input
            placeholder="usernames, separated by commas"
            value={members}
            onInput={(e) => setMembers(e.currentTarget.value)}
          />
        </label>
        <DialogActions error={error} submit="Create" onCancel={props.onClose} />
      </form>
    </Dialog>
  );
}
