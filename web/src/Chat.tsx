import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { Conversation, Message } from './api';
import { Icon } from './icons';
import {
  addMember,
  attachmentUrl,
  closeThread,
  deleteMessage,
  describe,
  discard,
  editMessage,
  loadOlder,
  mayPin,
  openThread,
  peer,
  reads,
  removeMember,
  renameGroup,
  reportMessage,
  retry,
  send,
  sendFile,
  sendReply,
  setRole,
  sortedMessages,
  state,
  thread,
  title,
  toast,
  toggleMute,
  togglePin,
  toggleReaction,
  typers,
  typing,
} from './store';

export function Chat() {
  const id = state.current;
  const c = id ? state.conversations.get(id) : undefined;
  const [details, setDetails] = useState(false);
  if (!c) {
    return (
      <div class="empty">
        <p>Pick a conversation, or start one with “New conversation”.</p>
      </div>
    );
  }
  const who = peer(c);
  const pres = who ? state.presence.get(who) : undefined;
  const muted = state.preferences?.muted_conversations.includes(c.id) ?? false;
  return (
    <div class="chat">
      <header class="chat-head">
        <h2 class="grow">
          {title(c)}
          {who && pres && (
            <small class={`presence ${pres?.status === 'online' ? 'online' : ''}`} data-testid="presence">
              {pres?.status === 'online' ? 'online' : pres?.last_seen ? `last seen ${time(pres.last_seen)}` : 'offline'}
            </small>
          )}
          {c.kind === 'group' && <small class="muted"> {c.member_count} members</small>}
        </h2>
        <button type="button" aria-pressed={muted} onClick={() => void toggleMute(c.id).catch((e) => toast(describe(e)))}>
          {muted ? 'Unmute' : 'Mute'}
        </button>
        <button type="button" aria-expanded={details} onClick={() => setDetails(!details)}>
          Details
        </button>
      </header>
      <div class="chat-body">
        <div class="chat-col">
          <Pinned c={c} />
          <MessageList key={c.id} c={c} />
          <Typing id={c.id} />
          <Composer key={c.id} c={c} />
        </div>
        {state.openThread?.id === c.id && <ThreadPanel c={c} root={state.openThread.root} />}
        {details && <Details c={c} />}
      </div>
    </div>
  );
}

function time(iso: string) {
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
}

let replyTo: Message | null = null;
let editing: number | null = null;

function MessageList({ c }: { c: Conversation }) {
  const ref = useRef<HTMLUListElement>(null);
  const t = thread(c.id);
  const msgs = sortedMessages(t);
  const me = state.user!.username;
  const stick = useRef(true);
  const prevHeight = useRef(0);
  const prevFirst = useRef<number | undefined>(undefined);
  const [, force] = useState(0);

  // Keep the bottom in view for new messages; keep the position when older ones come in above.
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    const first = msgs[0]?.seq;
    if (prevFirst.current !== undefined && first !== undefined && first < prevFirst.current && !stick.current) {
      el.scrollTop += el.scrollHeight - prevHeight.current;
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
    prevFirst.current = first;
    prevHeight.current = el.scrollHeight;
  });

  useEffect(() => {
    stick.current = true;
    prevFirst.current = undefined;
  }, [c.id]);

  // A short first page that does not fill the view: load more until it scrolls.
  useEffect(() => {
    const el = ref.current;
    if (el && t.loaded && !t.loading && t.older !== null && el.scrollHeight <= el.clientHeight) void loadOlder(c.id);
  });

  const onScroll = () => {
    const el = ref.current!;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 80) void loadOlder(c.id);
  };

  // Newest own message read by others: "Seen by …".
  const r = reads(c.id);
  const lastMine = [...msgs].reverse().find((m) => m.sender === me && !m.deleted);
  const seenBy = lastMine
    ? [...r.entries()].filter(([u, s]) => u !== me && s >= lastMine.seq).map(([u]) => u)
    : [];

  return (
    <ul aria-label="Messages" class="messages" ref={ref} onScroll={onScroll} aria-busy={t.loading}>
      {t.loaded && t.older === null && <li class="start muted">Beginning of the conversation</li>}
      {t.loading && <li class="start muted">Loading…</li>}
      {msgs.map((m) => (
        <MessageItem
          key={m.seq}
          m={m}
          c={c}
          mine={m.sender === me}
          replied={m.reply_to != null ? t.messages.get(m.reply_to) : undefined}
          seenBy={lastMine?.seq === m.seq ? seenBy : []}
          onChange={() => force((x) => x + 1)}
        />
      ))}
      {t.pending.map((p) => (
        <li key={p.client_id} class={`msg mine ${p.status}`} data-status={p.status}>
          <div class="bubble">
            <MessageBody kind={p.kind} content={p.content} url={p.url} attachment_id={p.attachment_id} metadata={p.metadata} />
          </div>
          <div class="meta">
            {p.status === 'sending' ? (
              'Sending…'
            ) : (
              <>
                <span class="error">Not sent{p.error ? `: ${p.error}` : ''}</span>{' '}
                <button type="button" class="link" onClick={() => retry(c.id, p.client_id)}>
                  Retry
                </button>{' '}
                <button type="button" class="link" onClick={() => discard(c.id, p.client_id)}>
                  Discard
                </button>
              </>
            )}
          </div>
        </li>
      ))}
    </ul>
  );
}

/** Text with the message's resolved `@username`s marked (the one naming the reader stronger). */
function WithMentions({ content, mentions }: { content: string; mentions: string[] }) {
  if (mentions.length === 0) return <>{content}</>;
  const me = state.user?.username.toLowerCase();
  const named = new Set(mentions.map((m) => m.toLowerCase()));
  // Split keeps the captured `@name`s; an `@` inside a word (an email address) is left alone.
  return (
    <>
      {content.split(/(?<![\w.-])(@[\w.-]*[\w-])/).map((part, i) => {
        const name = part.startsWith('@') ? part.slice(1).toLowerCase() : '';
        if (i % 2 === 0 || !named.has(name)) return part;
        return (
          <mark key={i} class={`mention ${name === me ? 'me' : ''}`}>
            {part}
          </mark>
        );
      })}
    </>
  );
}

function MessageBody(props: {
  kind: string;
  content: string;
  url?: string | null;
  attachment_id?: string | null;
  metadata?: Record<string, string>;
  mentions?: string[];
}) {
  const [fetched, setFetched] = useState<string | null>(null);
  useEffect(() => {
    if (!props.attachment_id) return;
    let live = true;
    attachmentUrl(props.attachment_id).then(
      (u) => live && setFetched(u),
      () => {},
    );
    return () => {
      live = false;
    };
  }, [props.attachment_id]);
  if (props.attachment_id) {
    // An upload: its bytes need the token, so they come as an object URL once fetched.
    const name = props.metadata?.name || 'attachment';
    return (
      <>
        {props.kind === 'image' ? (
          fetched ? (
            <img class="image" src={fetched} alt={name} />
          ) : (
            <span class="muted">Loading {name}…</span>
          )
        ) : (
          <a class="file" href={fetched ?? undefined} download={name} aria-disabled={!fetched}>
            <Icon name="clip" /> {name}
            {props.metadata?.size && <small class="muted"> ({props.metadata.size})</small>}
          </a>
        )}
        {props.content && <p>{props.content}</p>}
      </>
    );
  }
  if (props.kind === 'image' && props.url) {
    return (
      <>
        <a href={props.url} target="_blank" rel="noopener noreferrer">
          <img class="image" src={props.url} alt={props.metadata?.name || props.content || 'image'} loading="lazy" referrerpolicy="no-referrer" />
        </a>
        {props.content && <p>{props.content}</p>}
      </>
    );
  }
  if (props.kind === 'file' && props.url) {
    const size = props.metadata?.size;
    return (
      <>
        <a class="file" href={props.url} target="_blank" rel="noopener noreferrer" download>
          <Icon name="clip" /> {props.metadata?.name || props.url.split('/').pop()}
          {size && <small class="muted"> ({size})</small>}
        </a>
        {props.content && <p>{props.content}</p>}
      </>
    );
  }
  return (
    <p>
      <WithMentions content={props.content} mentions={props.mentions ?? []} />
    </p>
  );
}

function MessageItem(props: {
  m: Message;
  c: Conversation;
  mine: boolean;
  replied?: Message;
  seenBy: string[];
  onChange: () => void;
}) {
  const { m, c, mine } = props;
  const [draft, setDraft] = useState(m.content);
  const isEditing = editing === m.seq && mine;
  const canDelete = mine || c.my_role === 'admin' || c.my_role === 'owner';
  if (m.deleted) {
    return (
      <li class={`msg ${mine ? 'mine' : ''} deleted`} data-seq={m.seq}>
        <div class="bubble muted">message deleted</div>
      </li>
    );
  }
  return (
    <li class={`msg ${mine ? 'mine' : ''}`} data-seq={m.seq}>
      {!mine && c.kind === 'group' && <div class="sender">{m.sender ?? 'deleted account'}</div>}
      <div class="bubble">
        {m.reply_to != null && (
          <blockquote class="reply">
            {props.replied ? `${props.replied.sender}: ${props.replied.deleted ? 'message deleted' : props.replied.content}` : `reply to #${m.reply_to}`}
          </blockquote>
        )}
        {isEditing ? (
          <form
            class="row"
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                await editMessage(c.id, m.seq, draft);
                editing = null;
                props.onChange();
              } catch (err) {
                toast(describe(err));
              }
            }}
          >
            <label class="sr-label grow">
              Edit message
              <input value={draft} onInput={(e) => setDraft(e.currentTarget.value)} autoFocus required />
            </label>
            <button type="submit">Save</button>
            <button
              type="button"
              onClick={() => {
                editing = null;
                props.onChange();
              }}
            >
              Cancel
            </button>
          </form>
        ) : (
          <MessageBody
            kind={m.kind}
            content={m.content}
            url={m.url}
            attachment_id={m.attachment_id}
            metadata={m.metadata}
            mentions={m.mentions}
          />
        )}
      </div>
      <Reactions m={m} c={c} />
      {m.thread && (
        <button type="button" class="link thread-link" onClick={() => void openThread(c.id, m.seq).catch((e) => toast(describe(e)))}>
          {m.thread.reply_count} {m.thread.reply_count === 1 ? 'reply' : 'replies'}
        </button>
      )}
      <div class="meta">
        <time dateTime={m.created_at}>{time(m.created_at)}</time>
        {m.edited_at && <span> · edited</span>}
        {props.seenBy.length > 0 && (
          <span class="seen" data-testid="seen">
            {' '}
            · Seen by {props.seenBy.join(', ')}
          </span>
        )}
        <span class="msg-actions">
          <button
            type="button"
            class="link"
            aria-label={`Reply to ${m.sender}: ${m.content.slice(0, 40)}`}
            onClick={() => {
              replyTo = m;
              props.onChange();
              document.getElementById('composer')?.focus();
            }}
          >
            Reply
          </button>
          {mine && m.kind === 'text' && (
            <button
              type="button"
              class="link"
              onClick={() => {
                editing = m.seq;
                setDraft(m.content);
                props.onChange();
              }}
            >
              Edit
            </button>
          )}
          {m.thread_root == null && (
            <button type="button" class="link" onClick={() => void openThread(c.id, m.seq).catch((e) => toast(describe(e)))}>
              Thread
            </button>
          )}
          {mayPin(c) && (
            <button type="button" class="link" onClick={() => void togglePin(c.id, m.seq).catch((e) => toast(describe(e)))}>
              {state.pins.get(c.id)?.some((p) => p.message.seq === m.seq) ? 'Unpin' : 'Pin'}
            </button>
          )}
          {canDelete && (
            <button
              type="button"
              class="link"
              onClick={() => {
                if (confirm('Delete this message?')) void deleteMessage(c.id, m.seq).catch((e) => toast(describe(e)));
              }}
            >
              Delete
            </button>
          )}
          {!mine && !m.deleted && (
            <button
              type="button"
              class="link"
              onClick={() => {
                const reason = prompt('Why report this message to the administrators?');
                if (reason?.trim()) void reportMessage(c.id, m.seq, reason).catch((e) => toast(describe(e)));
              }}
            >
              Report
            </button>
          )}
        </span>
      </div>
    </li>
  );
}

/** A thread beside the history: its root, its replies, and a box to reply in it. */
function ThreadPanel({ c, root }: { c: Conversation; root: number }) {
  const [draft, setDraft] = useState('');
  const rootMessage = thread(c.id).messages.get(root);
  const replies = [...(state.openThread?.replies.values() ?? [])].sort((a, b) => a.seq - b.seq);
  const line = (m: Message) => (
    <li key={m.seq} data-seq={m.seq}>
      <strong>{m.sender ?? 'deleted account'}:</strong>{' '}
      {m.deleted ? <em class="muted">message deleted</em> : <WithMentions content={m.content} mentions={m.mentions} />}
    </li>
  );
  return (
    <aside class="details thread" aria-label="Thread">
      <div class="row">
        <h3 class="grow">Thread</h3>
        <button type="button" onClick={closeThread}>
          Close
        </button>
      </div>
      {rootMessage && <ul class="root">{line(rootMessage)}</ul>}
      <ul aria-label="Replies">{replies.map(line)}</ul>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (!draft.trim()) return;
          void sendReply(c.id, root, draft)
            .then(() => setDraft(''))
            .catch((err) => toast(describe(err)));
        }}
      >
        <label class="sr-label grow">
          Reply in thread
          <input value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
        </label>
        <button type="submit">Reply</button>
      </form>
    </aside>
  );
}

/** The conversation's pinned messages, above its history. */
function Pinned({ c }: { c: Conversation }) {
  const pins = state.pins.get(c.id) ?? [];
  if (pins.length === 0) return null;
  return (
    <section class="pinned" aria-label="Pinned messages">
      <ul>
        {pins.map((p) => (
          <li key={p.message.seq} data-seq={p.message.seq}>
            <span aria-hidden="true">📌 </span>
            <strong>{p.message.sender ?? 'deleted account'}:</strong> {p.message.content.slice(0, 120)}
            <small class="muted"> · pinned by {p.pinned_by ?? 'a deleted account'}</small>
          </li>
        ))}
      </ul>
    </section>
  );
}

const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '😢'];

/** A message's reactions (each a toggle) and a picker of a few common ones. */
function Reactions({ m, c }: { m: Message; c: Conversation }) {
  const [picking, setPicking] = useState(false);
  const toggle = (emoji: string) => {
    setPicking(false);
    void toggleReaction(c.id, m.seq, emoji).catch((e) => toast(describe(e)));
  };
  return (
    <div class="reactions" data-testid="reactions">
      {m.reactions.map((r) => (
        <button
          type="button"
          key={r.emoji}
          class={`reaction ${r.me ? 'me' : ''}`}
          aria-pressed={r.me}
          aria-label={`${r.emoji} ${r.count}`}
          onClick={() => toggle(r.emoji)}
        >
          {r.emoji} {r.count}
        </button>
      ))}
      <button type="button" class="reaction add" aria-label="Add reaction" aria-expanded={picking} onClick={() => setPicking(!picking)}>
        +
      </button>
      {picking && (
        <span class="picker" role="group" aria-label="Reactions">
          {QUICK_REACTIONS.map((emoji) => (
            <button type="button" key={emoji} class="link" aria-label={`React ${emoji}`} onClick={() => toggle(emoji)}>
              {emoji}
            </button>
          ))}
        </span>
      )}
    </div>
  );
}

function Typing({ id }: { id: string }) {
  const who = typers(id);
  return (
    <div class="typing" aria-live="polite" data-testid="typing">
      {who.length === 1 ? `${who[0]} is typing…` : who.length > 1 ? `${who.join(', ')} are typing…` : ''}
    </div>
  );
}

function Composer({ c }: { c: Conversation }) {
  const [text, setText] = useState('');
  const [attach, setAttach] = useState(false);
  const [kind, setKind] = useState<'image' | 'file'>('image');
  const [url, setUrl] = useState('');
  const [name, setName] = useState('');
  const [file, setFile] = useState<File | null>(null);
  const [, force] = useState(0);
  const reply = replyTo && replyTo.conversation_id === c.id ? replyTo : null;

  function submit(e: Event) {
    e.preventDefault();
    const content = text.trim();
    if (attach && file) {
      void sendFile(c.id, file, content, reply?.seq ?? null);
      setFile(null);
      setAttach(false);
    } else if (attach) {
      if (!/^https:\/\//.test(url.trim())) {
        toast('The attachment URL must start with https://');
        return;
      }
      const metadata: Record<string, string> = {};
      if (name.trim()) metadata.name = name.trim();
      send(c.id, content, { kind, url: url.trim(), metadata, reply_to: reply?.seq });
      setUrl('');
      setName('');
      setAttach(false);
    } else {
      if (!content) return;
      send(c.id, content, { reply_to: reply?.seq });
    }
    setText('');
    replyTo = null;
    force((x) => x + 1);
  }

  return (
    <form class="composer" onSubmit={submit}>
      {reply && (
        <div class="replying row">
          <span class="grow">
            Replying to {reply.sender}: {reply.content.slice(0, 80)}
          </span>
          <button
            type="button"
            class="link"
            onClick={() => {
              replyTo = null;
              force((x) => x + 1);
            }}
          >
            Cancel reply
          </button>
        </div>
      )}
      {attach && (
        <div class="row attach">
          <label>
            Type
            <select value={kind} onChange={(e) => setKind(e.currentTarget.value as 'image' | 'file')}>
              <option value="image">Image</option>
              <option value="file">File</option>
            </select>
          </label>
          <label class="grow">
            Attachment URL
            <input type="url" placeholder="https://…" value={url} onInput={(e) => setUrl(e.currentTarget.value)} required={!file} />
          </label>
          <label>
            Or upload
            <input type="file" onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)} />
          </label>
          <label>
            File name
            <input value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </label>
        </div>
      )}
      <div class="row">
        <button type="button" class="icon" aria-label="Attach by URL" aria-pressed={attach} onClick={() => setAttach(!attach)}>
          <Icon name="clip" />
        </button>
        <label class="sr-label grow">
          Message
          <input
            id="composer"
            autocomplete="off"
            maxLength={4000}
            placeholder={`Message ${title(c)}`}
            value={text}
            onInput={(e) => {
              setText(e.currentTarget.value);
              if (e.currentTarget.value) typing(c.id);
            }}
          />
        </label>
        <button type="submit" class="primary">
          Send
        </button>
      </div>
    </form>
  );
}

function Details({ c }: { c: Conversation }) {
  const me = state.user!.username;
  const admin = c.my_role === 'admin' || c.my_role === 'owner';
  const [name, setName] = useState(c.name ?? '');
  const [add, setAdd] = useState('');
  const act = (p: Promise<unknown>) => void p.catch((e) => toast(describe(e)));
  return (
    <aside class="details" aria-label="Conversation details">
      {c.kind === 'group' && admin && (
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            act(renameGroup(c.id, name.trim()));
          }}
        >
          <label class="grow">
            Group name
            <input value={name} onInput={(e) => setName(e.currentTarget.value)} required />
          </label>
          <button type="submit">Rename</button>
        </form>
      )}
      <h3>Members</h3>
      <ul aria-label="Members" class="members">
        {c.members.map((m) => {
          const online = m.username ? state.presence.get(m.username)?.status === 'online' : false;
          const u = m.username ?? '';
          return (
            <li key={u}>
              <span class={`dot ${online || u === me ? 'online' : ''}`} />
              <span class="grow">
                {u || 'deleted account'}
                {u === me && ' (you)'}
              </span>
              {c.kind === 'group' && c.my_role === 'owner' && u !== me ? (
                <label class="sr-label">
                  Role of {u}
                  <select value={m.role} onChange={(e) => act(setRole(c.id, u, e.currentTarget.value))}>
                    <option value="member">member</option>
                    <option value="admin">admin</option>
                    <option value="owner">owner</option>
                  </select>
                </label>
              ) : c.kind === 'group' && c.my_role === 'admin' && u !== me && m.role !== 'owner' ? (
                <label class="sr-label">
                  Role of {u}
                  <select value={m.role} onChange={(e) => act(setRole(c.id, u, e.currentTarget.value))}>
                    <option value="member">member</option>
                    <option value="admin">admin</option>
                  </select>
                </label>
              ) : (
                <small class="muted">{m.role}</small>
              )}
              {c.kind === 'group' && admin && u !== me && m.role !== 'owner' && (
                <button type="button" class="link" aria-label={`Remove ${u}`} onClick={() => act(removeMember(c.id, u))}>
                  Remove
                </button>
              )}
            </li>
          );
        })}
      </ul>
      {c.kind === 'group' && admin && (
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            act(addMember(c.id, add).then(() => setAdd('')));
          }}
        >
          <label class="grow">
            Add member
            <input value={add} onInput={(e) => setAdd(e.currentTarget.value)} required placeholder="username" />
          </label>
          <button type="submit">Add</button>
        </form>
      )}
      {c.kind === 'group' && (
        <button
          type="button"
          class="danger"
          onClick={() => {
            if (confirm('Leave this group?')) act(removeMember(c.id, me));
          }}
        >
          Leave group
        </button>
      )}
    </aside>
  );
}
