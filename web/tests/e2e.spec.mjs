// End-to-end test of the web client in headless Chromium (Debian's `chromium`), driven by
// playwright-core. Run by `scripts/test-web`, or: SOULCHAT_WEB_URL=http://127.0.0.1:8080 node --test tests/
//
// alice and bob (and carol for the group) sign up in separate browser contexts; alice opens a
// conversation with bob and sends; bob sees it live; bob goes offline, alice sends three more,
// bob comes back and sees each exactly once; typing, unread counts and read receipts update; a
// group of three works; logout returns to the login screen. Screenshots: web/test-artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE = (process.env.SOULCHAT_WEB_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const TIMEOUT = 15_000;
// The username of an administrator account (scripts/test-web makes one), for the moderation steps.
const ADMIN = process.env.SOULCHAT_WEB_ADMIN;
// A real 1x1 PNG, for an upload.
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==';
const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 5)}`;
const names = { alice: `alice_${run}`, bob: `bob_${run}`, carol: `carol_${run}` };

let browser;
const pages = {};
let shot = 0;

async function screenshot(page, name) {
  shot += 1;
  await page.screenshot({ path: `${ARTIFACTS}${String(shot).padStart(2, '0')}-${name}.png` });
}

/** Polls `f` until it returns a truthy value (or its assertion stops throwing). */
async function eventually(f, what, timeout = TIMEOUT) {
  const until = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
      last = new Error(`not yet: ${what}`);
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${last?.message}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const messages = (page) => page.getByRole('list', { name: 'Messages', exact: true });
const conversations = (page) => page.getByRole('list', { name: 'Conversations', exact: true });
/** The message items whose text is exactly `text` (a paragraph of it). */
const messageItems = (page, text) =>
  messages(page).getByRole('listitem').filter({ has: page.getByText(text, { exact: true }) });
const conversationItem = (page, text) => conversations(page).getByRole('listitem').filter({ hasText: text });
const button = (page, name) => page.getByRole('button', { name, exact: true });

async function newUser(who) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[${who}] page error:`, e.message));
  page.on('console', (m) => m.type() === 'error' && console.error(`[${who}] console:`, m.text()));
  pages[who] = page;
  await page.goto(`${BASE}/`);
  await page.getByRole('tab', { name: 'Sign up', exact: true }).click();
  await page.getByLabel('Username', { exact: true }).fill(names[who]);
  await page.getByLabel('Email', { exact: true }).fill(`${names[who]}@example.com`);
  await page.getByLabel('Password', { exact: true }).fill('correct horse battery');
  await button(page, 'Sign up').click();
  await button(page, 'Log out').waitFor({ timeout: TIMEOUT });
  return page;
}

/** Logs an existing account in, in a browser context of its own. */
async function logIn(who, username) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[${who}] page error:`, e.message));
  await page.goto(`${BASE}/`);
  await page.getByRole('tab', { name: 'Log in', exact: true }).click();
  await page.getByLabel('Email', { exact: true }).fill(`${username}@example.com`);
  await page.getByLabel('Password', { exact: true }).fill('correct horse battery');
  await button(page, 'Log in').click();
  await button(page, 'Log out').waitFor({ timeout: TIMEOUT });
  return page;
}

async function sendMessage(page, text) {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await button(page, 'Send').click();
  // Delivered: the item is there and no longer pending.
  await eventually(async () => {
    const item = messageItems(page, text);
    return (await item.count()) === 1 && (await item.getAttribute('data-status')) === null;
  }, `"${text}" delivered`);
}

async function connection(page) {
  return page.locator('[data-connection]').getAttribute('data-connection');
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
});

test('the login screen is served at / with no third-party requests', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const foreign = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(BASE) && !r.url().startsWith('data:')) foreign.push(r.url());
  });
  await page.goto(`${BASE}/`);
  await button(page, 'Log in').waitFor({ timeout: TIMEOUT });
  await page.getByLabel('Email', { exact: true }).waitFor();
  await page.getByLabel('Password', { exact: true }).waitFor();
  await screenshot(page, 'login');
  assert.deepEqual(foreign, []);
  await context.close();
});

test('two people chat live, through a network drop, a group and a logout', async () => {
  try {
    await conversation();
  } catch (e) {
    for (const [who, page] of Object.entries(pages)) await screenshot(page, `failure-${who}`).catch(() => {});
    throw e;
  }
});

async function conversation() {
  const alice = await newUser('alice');
  const bob = await newUser('bob');

  // alice opens a conversation with bob and sends.
  await button(alice, 'New conversation').click();
  const dialog = alice.getByRole('dialog');
  await dialog.getByLabel('Username', { exact: true }).fill(names.bob);
  await dialog.getByRole('button', { name: 'Start', exact: true }).click();
  await dialog.waitFor({ state: 'hidden', timeout: TIMEOUT });
  await alice.getByRole('heading', { name: names.bob }).waitFor({ timeout: TIMEOUT });
  await sendMessage(alice, 'hello bob');

  // bob sees it without reloading: the conversation appears with one unread message.
  const fromAlice = conversationItem(bob, names.alice);
  await fromAlice.waitFor({ timeout: TIMEOUT });
  await eventually(async () => (await fromAlice.getByTestId('unread').innerText()).startsWith('1'), 'bob has 1 unread');
  assert.match(await fromAlice.innerText(), /hello bob/);
  await screenshot(bob, 'bob-unread');

  await fromAlice.getByRole('button').click();
  await messageItems(bob, 'hello bob').waitFor({ timeout: TIMEOUT });
  await eventually(async () => (await fromAlice.getByTestId('unread').count()) === 0, 'bob read: unread cleared');

  // alice sees the read receipt.
  await eventually(
    async () => (await messageItems(alice, 'hello bob').getByTestId('seen').innerText()).includes(names.bob),
    'alice sees "Seen by bob"',
  );
  await screenshot(alice, 'alice-seen');

  // Typing shows.
  await bob.getByLabel('Message', { exact: true }).pressSequentially('typing away', { delay: 20 });
  await eventually(
    async () => (await alice.getByTestId('typing').innerText()).includes(`${names.bob} is typing`),
    'alice sees bob typing',
  );
  await screenshot(alice, 'alice-typing');
  await bob.getByLabel('Message', { exact: true }).fill('');

  // bob goes offline; alice sends three; bob comes back and sees each exactly once.
  await bob.context().setOffline(true);
  await eventually(async () => (await connection(bob)) === 'reconnecting', 'bob shows reconnecting');
  await bob.getByRole('status').filter({ hasText: 'Reconnecting' }).waitFor({ timeout: TIMEOUT });
  await screenshot(bob, 'bob-reconnecting');
  for (const n of [1, 2, 3]) await sendMessage(alice, `while you were away ${n}`);
  await new Promise((r) => setTimeout(r, 500));
  await bob.context().setOffline(false);
  await eventually(async () => (await connection(bob)) === 'live', 'bob live again', 30_000);
  for (const n of [1, 2, 3]) {
    await eventually(async () => (await messageItems(bob, `while you were away ${n}`).count()) === 1, `bob has message ${n}`);
  }
  // Nothing twice, after the replay settles.
  await new Promise((r) => setTimeout(r, 1000));
  for (const text of ['hello bob', 'while you were away 1', 'while you were away 2', 'while you were away 3']) {
    assert.equal(await messageItems(bob, text).count(), 1, `"${text}" exactly once for bob`);
  }
  assert.equal(await messages(bob).locator('li[data-seq]').count(), 4, 'bob has exactly four messages');
  await screenshot(bob, 'bob-after-resume');
  // Presence: bob's new socket announced him online to alice, a contact now.
  await eventually(async () => (await alice.getByTestId('presence').innerText()) === 'online', 'alice sees bob online');

  // bob answers; alice's list shows it; the receipt moves to alice's latest message.
  await sendMessage(bob, 'back online');
  await messageItems(alice, 'back online').waitFor({ timeout: TIMEOUT });
  await eventually(
    async () => (await messageItems(alice, 'while you were away 3').getByTestId('seen').count()) === 1,
    'the receipt moved to alice\'s latest message',
  );

  // A group of three.
  const carol = await newUser('carol');
  await button(alice, 'New group').click();
  const groupDialog = alice.getByRole('dialog');
  const group = `trio ${run}`;
  await groupDialog.getByLabel('Group name', { exact: true }).fill(group);
  await groupDialog.getByLabel('Members', { exact: true }).fill(`${names.bob}, ${names.carol}`);
  await groupDialog.getByRole('button', { name: 'Create', exact: true }).click();
  await groupDialog.waitFor({ state: 'hidden', timeout: TIMEOUT });
  await alice.getByRole('heading', { name: group }).waitFor({ timeout: TIMEOUT });
  await sendMessage(alice, 'hi group');
  for (const page of [bob, carol]) {
    const item = conversationItem(page, group);
    await item.waitFor({ timeout: TIMEOUT });
    await eventually(async () => (await item.getByTestId('unread').innerText()).startsWith('1'), 'group unread 1');
    await item.getByRole('button').click();
    await messageItems(page, 'hi group').waitFor({ timeout: TIMEOUT });
  }
  await sendMessage(carol, 'hi from carol');
  for (const page of [alice, bob]) await messageItems(page, 'hi from carol').waitFor({ timeout: TIMEOUT });
  // The group is first in bob's list now (live reordering), above the direct conversation.
  assert.match(await conversations(bob).getByRole('listitem').first().innerText(), new RegExp(group));
  // alice renames it; bob's list follows.
  await button(alice, 'Details').click();
  await alice.getByRole('complementary', { name: 'Conversation details' }).getByLabel('Group name', { exact: true }).fill(`${group} renamed`);
  await button(alice, 'Rename').click();
  await conversationItem(bob, `${group} renamed`).waitFor({ timeout: TIMEOUT });
  await screenshot(alice, 'alice-group');
  await screenshot(carol, 'carol-group');

  // Logout returns to the login screen, and stays there after a reload.
  await button(alice, 'Log out').click();
  await button(alice, 'Log in').waitFor({ timeout: TIMEOUT });
  await alice.reload();
  await button(alice, 'Log in').waitFor({ timeout: TIMEOUT });
  assert.equal(await button(alice, 'Log out').count(), 0);
  await screenshot(alice, 'alice-logged-out');
}

test('profile, people, replies, edits, deletes, attachments, retries, history, notifications, revocation', async () => {
  try {
    await features();
  } catch (e) {
    for (const who of ['dave', 'erin']) if (pages[who]) await screenshot(pages[who], `failure-${who}`).catch(() => {});
    throw e;
  }
});

async function features() {
  names.dave = `dave_${run}`;
  names.erin = `erin_${run}`;
  const dave = await newUser('dave');
  const erin = await newUser('erin');

  // Profile: bio and image URL.
  await button(dave, 'Profile').click();
  await dave.getByLabel('Bio', { exact: true }).fill('I test things');
  await dave.getByLabel('Image URL', { exact: true }).fill('https://img.example/dave.png');
  await dave.getByRole('dialog').getByRole('button', { name: 'Save', exact: true }).click();
  await dave.getByRole('dialog').waitFor({ state: 'hidden', timeout: TIMEOUT });

  // Find people by name, follow, chat.
  await erin.getByLabel('Search people', { exact: true }).fill(names.dave.slice(0, 8));
  const result = erin.getByRole('list', { name: 'People', exact: true }).getByRole('listitem').filter({ hasText: names.dave });
  await result.waitFor({ timeout: TIMEOUT });
  assert.match(await result.innerText(), /I test things/);
  await result.getByRole('button', { name: 'Follow', exact: true }).click();
  await result.getByRole('button', { name: 'Unfollow', exact: true }).waitFor({ timeout: TIMEOUT });
  await result.getByRole('button', { name: 'Chat', exact: true }).click();
  await erin.getByRole('heading', { name: names.dave }).waitFor({ timeout: TIMEOUT });

  // History: 120 messages through the API, then scrolled up to the first.
  const token = await erin.evaluate(() => JSON.parse(localStorage.getItem('soulchat.session')).token);
  const id = await erin.evaluate(async (t) => {
    const r = await fetch('/api/conversations', { headers: { Authorization: `Token ${t}` } });
    return (await r.json()).conversations[0].id;
  }, token);
  await erin.evaluate(
    async ({ t, id }) => {
      for (let i = 1; i <= 120; i++) {
        await fetch(`/api/conversations/${id}/messages`, {
          method: 'POST',
          headers: { Authorization: `Token ${t}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ client_id: `seed-${i}`, content: `seed message ${i}` }),
        });
      }
    },
    { t: token, id },
  );
  const fromErin = conversationItem(dave, names.erin);
  await fromErin.waitFor({ timeout: TIMEOUT });
  await fromErin.getByRole('button').click();
  await messageItems(dave, 'seed message 120').waitFor({ timeout: TIMEOUT });
  assert.equal(await messages(dave).getByText('seed message 1', { exact: true }).count(), 0, 'the first page is the newest');
  await eventually(async () => {
    await messages(dave).evaluate((el) => el.scrollTo(0, 0));
    return (await messages(dave).getByText('seed message 1', { exact: true }).count()) === 1;
  }, 'history loaded upwards to the first message');
  await messages(dave).getByText('Beginning of the conversation').waitFor();
  assert.equal(await messages(dave).locator('li[data-seq]').count(), 120);

  // Reply, edit and delete.
  const last = messageItems(dave, 'seed message 120');
  await last.scrollIntoViewIfNeeded();
  await last.hover();
  await last.getByRole('button', { name: /^Reply to/ }).click();
  await sendMessage(dave, 'a reply');
  assert.match(await messageItems(dave, 'a reply').innerText(), /seed message 120/);
  await messageItems(erin, 'a reply').waitFor({ timeout: TIMEOUT });
  const seq = await messageItems(dave, 'a reply').getAttribute('data-seq');
  const mine = messages(dave).locator(`li[data-seq="${seq}"]`);
  await mine.hover();
  await mine.getByRole('button', { name: 'Edit', exact: true }).click();
  await mine.getByLabel('Edit message', { exact: true }).fill('an edited reply');
  await mine.getByRole('button', { name: 'Save', exact: true }).click();
  await messageItems(erin, 'an edited reply').waitFor({ timeout: TIMEOUT });

  // Reactions: each side's toggles reach the other live.
  const theirs = messageItems(erin, 'an edited reply');
  await theirs.hover();
  await theirs.getByRole('button', { name: 'Add reaction', exact: true }).click();
  await theirs.getByRole('button', { name: 'React 🎉', exact: true }).click();
  const daves = messageItems(dave, 'an edited reply');
  await daves.getByRole('button', { name: '🎉 1', exact: true }).waitFor({ timeout: TIMEOUT });
  await daves.getByRole('button', { name: '🎉 1', exact: true }).click();
  await theirs.getByRole('button', { name: '🎉 2', exact: true }).waitFor({ timeout: TIMEOUT });
  assert.equal(await daves.getByRole('button', { name: '🎉 2', exact: true }).getAttribute('aria-pressed'), 'true');
  await theirs.getByRole('button', { name: '🎉 2', exact: true }).click();
  await daves.getByRole('button', { name: '🎉 1', exact: true }).waitFor({ timeout: TIMEOUT });

  // Pins: either side of a direct conversation pins; the other sees it above the history, and a
  // deleted message leaves the pinned list.
  await daves.hover();
  await daves.getByRole('button', { name: 'Pin', exact: true }).click();
  const erinsPins = erin.getByRole('region', { name: 'Pinned messages', exact: true });
  await erinsPins.getByText('an edited reply').waitFor({ timeout: TIMEOUT });
  assert.match(await erinsPins.innerText(), new RegExp(`pinned by ${names.dave}`));

  // A mention is marked, strongest for the one it names.
  await sendMessage(erin, `thanks @${names.dave}`);
  const mention = messageItems(dave, `thanks @${names.dave}`).locator('mark.mention.me');
  await mention.waitFor({ timeout: TIMEOUT });
  assert.equal(await mention.innerText(), `@${names.dave}`);

  // Threads: a reply goes beside the history, and the root counts it for the other side.
  const thanks = messageItems(dave, `thanks @${names.dave}`);
  await thanks.hover();
  await thanks.getByRole('button', { name: 'Thread', exact: true }).click();
  const davesThread = dave.getByRole('complementary', { name: 'Thread', exact: true });
  await davesThread.getByLabel('Reply in thread', { exact: true }).fill('a thread reply');
  await davesThread.getByRole('button', { name: 'Reply', exact: true }).click();
  await davesThread.getByRole('list', { name: 'Replies' }).getByText('a thread reply').waitFor({ timeout: TIMEOUT });
  const erinsRoot = messageItems(erin, `thanks @${names.dave}`);
  await erinsRoot.getByRole('button', { name: '1 reply', exact: true }).click();
  const erinsThread = erin.getByRole('complementary', { name: 'Thread', exact: true });
  await erinsThread.getByRole('list', { name: 'Replies' }).getByText('a thread reply').waitFor({ timeout: TIMEOUT });
  assert.equal(await messages(erin).getByText('a thread reply').count(), 0, 'not in the main history');
  await erinsThread.getByRole('button', { name: 'Close', exact: true }).click();
  await button(dave, 'Close').click();
  dave.once('dialog', (d) => d.accept());
  const edited = messageItems(dave, 'an edited reply');
  await edited.hover();
  await edited.getByRole('button', { name: 'Delete', exact: true }).click();
  await eventually(async () => (await messageItems(erin, 'an edited reply').count()) === 0, 'deleted for erin');
  await erinsPins.waitFor({ state: 'detached', timeout: TIMEOUT });

  // An image by URL.
  await button(dave, 'Attach by URL').click();
  await dave.getByLabel('Attachment URL', { exact: true }).fill('https://img.example/cat.png');
  await dave.getByLabel('File name', { exact: true }).fill('cat.png');
  await dave.getByLabel('Message', { exact: true }).fill('a cat');
  await button(dave, 'Send').click();
  await messages(erin).getByRole('img', { name: 'cat.png' }).waitFor({ timeout: TIMEOUT });

  // Uploads: an image shown inline (its bytes fetched with the token), a file as a download.
  await button(dave, 'Attach by URL').click();
  await dave.getByLabel('Or upload', { exact: true }).setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: Buffer.from(PNG, 'base64') });
  await button(dave, 'Send').click();
  const dot = messages(erin).getByRole('img', { name: 'dot.png' });
  await dot.waitFor({ timeout: TIMEOUT });
  await eventually(async () => (await dot.evaluate((img) => img.complete && img.naturalWidth)) === 1, 'the uploaded image loads for erin');
  await button(dave, 'Attach by URL').click();
  await dave.getByLabel('Or upload', { exact: true }).setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('notes from dave') });
  await dave.getByLabel('Message', { exact: true }).fill('my notes');
  await button(dave, 'Send').click();
  const notes = messages(erin).getByRole('link', { name: /notes\.txt/ });
  await notes.waitFor({ timeout: TIMEOUT });
  await eventually(async () => (await notes.getAttribute('href'))?.startsWith('blob:'), 'the file link is ready');
  const [download] = await Promise.all([erin.waitForEvent('download'), notes.click()]);
  assert.equal(download.suggestedFilename(), 'notes.txt');
  assert.equal(readFileSync(await download.path(), 'utf8'), 'notes from dave');
  await screenshot(erin, 'erin-attachments');

  // A failed send shows, and its retry sends it once.
  let refused = false;
  await dave.route('**/api/conversations/*/messages', (route) => {
    if (route.request().method() === 'POST' && !refused) {
      refused = true;
      return route.abort('failed');
    }
    return route.continue();
  });
  await dave.getByLabel('Message', { exact: true }).fill('try again');
  await button(dave, 'Send').click();
  const failed = messages(dave).locator('li[data-status="failed"]').filter({ hasText: 'try again' });
  await failed.waitFor({ timeout: TIMEOUT });
  await screenshot(dave, 'dave-failed-send');
  await failed.getByRole('button', { name: 'Retry', exact: true }).click();
  await eventually(async () => (await messageItems(dave, 'try again').count()) === 1 && (await failed.count()) === 0, 'retried');
  await messageItems(erin, 'try again').waitFor({ timeout: TIMEOUT });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await messageItems(erin, 'try again').count(), 1);
  await screenshot(erin, 'erin-features');

  // Erin reports one of dave's messages; the reports view is for administrators only.
  const reported = messageItems(erin, 'try again');
  await reported.hover();
  erin.once('dialog', (d) => d.accept('spam'));
  await reported.getByRole('button', { name: 'Report', exact: true }).click();
  await erin.getByRole('alert').filter({ hasText: 'Reported to the administrators' }).waitFor({ timeout: TIMEOUT });
  await button(erin, 'Reports').click();
  await erin.getByRole('region', { name: 'Reports panel' }).getByText('Only administrators see reports.').waitFor({ timeout: TIMEOUT });
  await button(erin, 'Close reports').click();
  // An administrator (when the server has one) deletes the reported message from the panel.
  if (ADMIN) {
    const admin = await logIn('admin', ADMIN);
    await button(admin, 'Reports').click();
    const report = admin.getByRole('list', { name: 'Report list', exact: true }).getByRole('listitem').filter({ hasText: 'try again' });
    await report.getByText(`${names.erin} reported ${names.dave}: spam`).waitFor({ timeout: TIMEOUT });
    await screenshot(admin, 'admin-reports');
    await report.getByRole('button', { name: 'Delete message', exact: true }).click();
    await admin.getByRole('list', { name: 'Report list', exact: true }).getByText('No open reports').waitFor({ timeout: TIMEOUT });
    await eventually(async () => (await messageItems(erin, 'try again').count()) === 0, 'the deleted message gone for erin');
    await eventually(async () => (await messageItems(dave, 'try again').count()) === 0, 'the deleted message gone for dave');
    await admin.context().close();
  }

  // Mute, then the notification panel: its badge and mark all read.
  await button(dave, 'Mute').click();
  await button(dave, 'Unmute').waitFor({ timeout: TIMEOUT });
  await button(erin, 'Notifications').click();
  await erin.getByRole('region', { name: 'Notifications panel' }).waitFor();
  await screenshot(erin, 'erin-notifications');
  await button(erin, 'Mark all read').click();
  await eventually(async () => (await erin.getByTestId('notification-badge').count()) === 0, 'badge cleared');

  // Web Push opt-in asks the server for its VAPID key: this one has none, and says so.
  await button(erin, 'Settings').click();
  await button(erin, 'Enable push').click();
  await erin.getByRole('status').filter({ hasText: 'This server does not send push notifications.' }).waitFor({ timeout: TIMEOUT });
  await erin.keyboard.press('Escape');

  // Dave blocks erin: her next message is refused, and unblocked she is heard again.
  await dave.getByLabel('Search people', { exact: true }).fill(names.erin.slice(0, 8));
  const erinItem = dave.getByRole('list', { name: 'People', exact: true }).getByRole('listitem').filter({ hasText: names.erin });
  await erinItem.getByRole('button', { name: 'Block', exact: true }).click();
  await erinItem.getByRole('button', { name: 'Unblock', exact: true }).waitFor({ timeout: TIMEOUT });
  let attempt = 0;
  await eventually(async () => {
    const text = `are you there? ${++attempt}`;
    await erin.getByLabel('Message', { exact: true }).fill(text);
    await button(erin, 'Send').click();
    const notSent = messages(erin).locator('li[data-status="failed"]').filter({ hasText: text });
    const sent = messages(erin).locator('li[data-seq]').filter({ hasText: text });
    await notSent.or(sent).first().waitFor({ timeout: TIMEOUT });
    if ((await notSent.count()) === 0) return false; // sent before the chat worker knew of the block
    assert.match(await notSent.innerText(), /blocked/);
    await notSent.getByRole('button', { name: 'Discard', exact: true }).click();
    return true;
  }, 'a blocked send is refused');
  await screenshot(dave, 'dave-blocked');
  // With no search typed, the people Dave blocks are listed, and unblocked from there.
  await dave.getByLabel('Search people', { exact: true }).fill('');
  const blockedErin = dave.getByRole('list', { name: 'Blocked people', exact: true }).getByRole('listitem').filter({ hasText: names.erin });
  await blockedErin.getByRole('button', { name: 'Unblock', exact: true }).click();
  await dave.getByRole('list', { name: 'Blocked people', exact: true }).waitFor({ state: 'detached', timeout: TIMEOUT });
  await dave.getByLabel('Search people', { exact: true }).fill(names.erin.slice(0, 8));
  await erinItem.getByRole('button', { name: 'Block', exact: true }).waitFor({ timeout: TIMEOUT });
  await dave.getByLabel('Search people', { exact: true }).fill('');

  // A revoked session returns to the login screen.
  const daveToken = await dave.evaluate(() => JSON.parse(localStorage.getItem('soulchat.session')).token);
  const res = await fetch(`${BASE}/api/users/logout`, { method: 'POST', headers: { Authorization: `Token ${daveToken}` } });
  assert.equal(res.status, 204);
  await button(dave, 'Log in').waitFor({ timeout: 30_000 });
  await dave.getByText('Your session has ended').waitFor();
  await screenshot(dave, 'dave-revoked');
}

test('messages are found by search, and a result opens its conversation', async () => {
  names.fay = `fay_${run}`;
  names.gus = `gus_${run}`;
  const fay = await newUser('fay');
  await newUser('gus');
  try {
    await button(fay, 'New conversation').click();
    await fay.getByRole('dialog').getByLabel('Username', { exact: true }).fill(names.gus);
    await fay.getByRole('dialog').getByRole('button', { name: 'Start', exact: true }).click();
    await fay.getByRole('heading', { name: names.gus }).waitFor({ timeout: TIMEOUT });
    await sendMessage(fay, 'the zeppelin lands at noon');
    await sendMessage(fay, 'something else entirely');
    // Away from the conversation, then back to it through a search result.
    await button(fay, 'New group').click();
    await fay.getByRole('dialog').getByLabel('Group name', { exact: true }).fill('searchers');
    await fay.getByRole('dialog').getByLabel('Members', { exact: true }).fill(names.gus);
    await fay.getByRole('dialog').getByRole('button', { name: 'Create', exact: true }).click();
    await fay.getByRole('heading', { name: 'searchers' }).waitFor({ timeout: TIMEOUT });
    await fay.getByLabel('Search messages', { exact: true }).fill('ZEPP');
    const results = fay.getByRole('list', { name: 'Message results', exact: true }).getByRole('listitem');
    await results.first().waitFor({ timeout: TIMEOUT });
    assert.equal(await results.count(), 1);
    assert.match(await results.first().innerText(), /zeppelin lands at noon/);
    await results.first().getByRole('button').click();
    await fay.getByRole('heading', { name: names.gus }).waitFor({ timeout: TIMEOUT });
    await fay.getByLabel('Search messages', { exact: true }).fill('xy');
    await fay.getByText('Search needs a word of at least 3 letters or digits').waitFor({ timeout: TIMEOUT });
    await screenshot(fay, 'message-search');
  } catch (e) {
    await screenshot(fay, 'failure-search').catch(() => {});
    throw e;
  }
});

// Close 4000: against a gateway started with a tiny SOULCHAT_SOCKET_QUEUE (e.g. 4), a burst of
// 60 messages overflows bob's socket; the client reconnects, resumes, and shows each once.
const SMALL_QUEUE = process.env.SOULCHAT_SMALL_QUEUE_WEB_URL?.replace(/\/$/, '');
test('a socket closed with 4000 resumes without gaps or duplicates', { skip: !SMALL_QUEUE && 'set SOULCHAT_SMALL_QUEUE_WEB_URL' }, async () => {
  const signUp = async (name) => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${SMALL_QUEUE}/`);
    await page.getByRole('tab', { name: 'Sign up', exact: true }).click();
    await page.getByLabel('Username', { exact: true }).fill(name);
    await page.getByLabel('Email', { exact: true }).fill(`${name}@example.com`);
    await page.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await button(page, 'Sign up').click();
    await button(page, 'Log out').waitFor({ timeout: TIMEOUT });
    return page;
  };
  const a = await signUp(`qa_${run}`);
  const b = await signUp(`qb_${run}`);
  await button(a, 'New conversation').click();
  await a.getByRole('dialog').getByLabel('Username', { exact: true }).fill(`qb_${run}`);
  await a.getByRole('dialog').getByRole('button', { name: 'Start', exact: true }).click();
  const item = conversations(b).getByRole('listitem').first();
  await item.waitFor({ timeout: TIMEOUT });
  await item.getByRole('button').click();
  await b.evaluate(() => {
    const el = document.querySelector('[data-connection]');
    window.connectionStates = [];
    new MutationObserver(() => window.connectionStates.push(el.dataset.connection)).observe(el, { attributes: true });
  });
  // The burst comes from here, all 60 at once (a browser would send six at a time): the chat
  // worker commits them in a few batches, and each batch's frames reach bob's 4-frame queue
  // together, faster than his socket drains it.
  const t = await a.evaluate(() => JSON.parse(localStorage.getItem('soulchat.session')).token);
  const h = { Authorization: `Token ${t}`, 'Content-Type': 'application/json' };
  const id = (await (await fetch(`${SMALL_QUEUE}/api/conversations`, { headers: h })).json()).conversations[0].id;
  const sent = await Promise.all(
    Array.from({ length: 60 }, (_, i) =>
      fetch(`${SMALL_QUEUE}/api/conversations/${id}/messages`, {
        method: 'POST',
        headers: h,
        body: JSON.stringify({ client_id: `burst-${i}`, content: `burst ${i}` }),
      }),
    ),
  );
  assert.ok(sent.every((r) => r.status === 201), 'every send stored');
  await eventually(async () => (await messages(b).locator('li[data-seq]').count()) >= 60, 'bob has the burst', 30_000);
  await eventually(async () => (await connection(b)) === 'live', 'bob live');
  await new Promise((r) => setTimeout(r, 1000));
  const texts = await messages(b).locator('li[data-seq] p').allInnerTexts();
  assert.equal(texts.length, 60);
  assert.equal(new Set(texts).size, 60);
  const states = await b.evaluate(() => window.connectionStates);
  assert.ok(states.includes('reconnecting'), `the socket was dropped (states: ${states})`);
});
