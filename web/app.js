// "My video conferences" — one ES module, no build step, on meetline's JSON API.
// The session is an HttpOnly cookie; every request names the user's language, so the API's
// errors (the seed's exact strings) come back in it and are shown next to the field they concern.

const dict = {
  zh: {
    module: '会议管理', more: '更多', title: '我的视频会议', signout: '退出', recent: '近期会议', all: '全部会议',
    join: '加入会议', quick: '快速会议', schedule: '预订会议', status: '状态', any: '全部', search: '搜索', apply: '筛选',
    not_started: '未开始', in_progress: '进行中', ended: '结束', manually_ended: '手动结束', cancelled: '已取消',
    load_more: '加载更多', number: '会议号', close: '取消', dismiss: '关闭', subject: '会议名称', start_now: '开始会议',
    quick_ready: '快速会议已创建', enter_now: '立即进入', invite_colleagues: '邀请同事', date: '日期', start: '开始时间',
    end: '结束时间', timezone: '时区', attendees: '参会人', related: '相关链接', save: '保存', invite: '邀请',
    edit: '编辑', view: '查看', cancel: '取消', end_early: '提前结束', host_link: '主持人链接', attendee_link: '参会人链接',
    copy: '复制链接', open: '在新窗口中打开', copied: '链接已复制', time: '时间', host: '主持人', line: '线路',
    empty_recent: '近一个月没有未开始或进行中的会议', empty_all: '没有会议', confirm_cancel: '确定取消会议“{s}”吗？',
    confirm_end: '确定提前结束会议“{s}”吗？', saved: '已保存', created: '会议已创建', joined: '已加入会议',
    cancelled_ok: '会议已取消', ended_ok: '会议已提前结束', invited_ok: '已邀请', links_changed: '会议已换到其他线路，链接已更新',
    provisioning: '正在向视频服务商创建会议…', lang: 'English', me_admin: '（管理员）', none: '无',
  },
  en: {
    module: 'Meetings', more: 'More', title: 'My video conferences', signout: 'Sign out', recent: 'Recent', all: 'All',
    join: 'Join', quick: 'Quick meeting', schedule: 'Schedule', status: 'Status', any: 'Any', search: 'Search', apply: 'Filter',
    not_started: 'Not started', in_progress: 'In progress', ended: 'Ended', manually_ended: 'Ended early', cancelled: 'Cancelled',
    load_more: 'Load more', number: 'Conference number', close: 'Cancel', dismiss: 'Close', subject: 'Subject', start_now: 'Start',
    quick_ready: 'Quick meeting created', enter_now: 'Enter now', invite_colleagues: 'Invite colleagues', date: 'Date',
    start: 'Start', end: 'End', timezone: 'Time zone', attendees: 'Attendees', related: 'Related link', save: 'Save',
    invite: 'Invite', edit: 'Edit', view: 'View', cancel: 'Cancel', end_early: 'End early', host_link: 'Host link',
    attendee_link: 'Attendee link', copy: 'Copy link', open: 'Open in new window', copied: 'Link copied', time: 'Time',
    host: 'Host', line: 'Line', empty_recent: 'No conferences in progress or coming up in the next month',
    empty_all: 'No conferences', confirm_cancel: 'Cancel the conference “{s}”?', confirm_end: 'End the conference “{s}” now?',
    saved: 'Saved', created: 'Conference created', joined: 'You joined the conference', cancelled_ok: 'Conference cancelled',
    ended_ok: 'Conference ended', invited_ok: 'Invited', links_changed: 'The conference moved to another line: its links changed',
    provisioning: 'The video provider is creating the meeting…', lang: '中文', me_admin: ' (admin)', none: 'None',
  },
};

const ZONES = ['Asia/Shanghai', 'Asia/Hong_Kong', 'Asia/Tokyo', 'Asia/Singapore', 'Europe/London', 'Europe/Berlin',
  'America/New_York', 'America/Los_Angeles', 'UTC'];

const state = { lang: localStorage.getItem('meetline.lang') || (navigator.language.startsWith('en') ? 'en' : 'zh'),
  me: null, users: [], tab: 'recent', cursor: null, position: 0, filters: { status: '', q: '' } };

const $ = (selector, root = document) => root.querySelector(selector);
const t = (key, vars = {}) => (dict[state.lang][key] || key).replace(/\{(\w+)\}/g, (_, name) => vars[name] ?? '');

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

async function api(path, { method = 'GET', body, ifMatch } = {}) {
  const headers = { 'Accept-Language': state.lang === 'en' ? 'en' : 'zh-CN' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (ifMatch) headers['If-Match'] = ifMatch;
  if (method === 'GET' && state.position) headers['X-Min-Position'] = String(state.position);
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  if (response.status === 401) { location.href = '/signin'; return { ok: false, status: 401, body: {} }; }
  const position = Number(response.headers.get('X-Position'));
  if (position > state.position) state.position = position;
  const text = await response.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = {}; }
  return { ok: response.ok, status: response.status, body: data, etag: response.headers.get('ETag') };
}

// ---- time zones --------------------------------------------------------------------------------

function offsetMinutes(instant, zone) {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit',
    day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).formatToParts(instant);
  const get = (type) => Number(parts.find((part) => part.type === type).value);
  return (Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second')) - instant.getTime()) / 60000;
}

/** A wall-clock date and time in `zone` as an RFC 3339 UTC instant. */
function zonedToUtc(date, time, zone) {
  const [y, m, d] = date.split('-').map(Number);
  const [hh, mm] = time.split(':').map(Number);
  const guess = Date.UTC(y, m - 1, d, hh, mm);
  let result = guess - offsetMinutes(new Date(guess), zone) * 60000;
  result = guess - offsetMinutes(new Date(result), zone) * 60000;
  return new Date(result).toISOString().replace('.000Z', 'Z');
}

function zonedParts(iso, zone) {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit',
    day: '2-digit', hour: '2-digit', minute: '2-digit' }).formatToParts(new Date(iso));
  const get = (type) => parts.find((part) => part.type === type).value;
  return { date: `${get('year')}-${get('month')}-${get('day')}`, time: `${get('hour')}:${get('minute')}` };
}

const userZone = () => state.me?.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone || 'Asia/Shanghai';

function when(c) {
  const locale = state.lang === 'en' ? 'en-GB' : 'zh-CN';
  const day = new Intl.DateTimeFormat(locale, { timeZone: userZone(), dateStyle: 'medium', timeStyle: 'short' });
  const time = new Intl.DateTimeFormat(locale, { timeZone: userZone(), timeStyle: 'short' });
  return `${day.format(new Date(c.start))} – ${time.format(new Date(c.end))}`;
}

const name = (id) => state.users.find((user) => user.id === id)?.name || id;

// ---- list --------------------------------------------------------------------------------------

const manages = (c) => state.me && (state.me.admin || c.host === state.me.user || c.creator === state.me.user);

function notice(text) {
  $('#notice').textContent = text;
}

function rowActions(c) {
  const actions = [];
  const button = (key, onclick, cls) => el('button', { type: 'button', class: cls, onclick, text: t(key), 'aria-label': `${t(key)} ${c.subject}` });
  if (c.status === 'not_started' && manages(c)) actions.push(button('edit', () => openSchedule(c)));
  actions.push(button('view', () => openDetail(c.id)));
  if ((c.status === 'not_started' || c.status === 'in_progress') && manages(c)) actions.push(button('invite', () => openInvite(c)));
  if (c.status === 'not_started' && manages(c)) actions.push(button('cancel', () => cancelConference(c), 'danger'));
  if (c.status === 'in_progress' && manages(c)) actions.push(button('end_early', () => endConference(c), 'danger'));
  return actions;
}

function row(c) {
  return el('li', { class: 'row-item', 'data-id': c.id },
    el('h3', { text: c.subject }),
    el('div', { class: 'row-actions' }, rowActions(c)),
    el('div', { class: 'meta' },
      el('span', { class: `badge ${c.status}`, text: c.status_label }),
      el('span', { text: when(c) }),
      el('span', { text: `${t('number')} ${c.number}` })));
}

async function load(append = false) {
  const list = $('#list');
  let path = '/api/v1/conferences/recent';
  if (state.tab === 'all') {
    const query = new URLSearchParams({ limit: '20' });
    if (state.filters.status) query.set('status', state.filters.status);
    if (state.filters.q) query.set('q', state.filters.q);
    if (append && state.cursor) query.set('cursor', state.cursor);
    path = `/api/v1/conferences?${query}`;
  }
  const reply = await api(path);
  if (!reply.ok) { notice(reply.body.detail || ''); return; }
  if (!append) list.replaceChildren();
  for (const c of reply.body.items) list.append(row(c));
  if (!list.children.length) list.append(el('li', { class: 'empty', text: t(state.tab === 'recent' ? 'empty_recent' : 'empty_all') }));
  state.cursor = reply.body.next_cursor || null;
  $('#more').hidden = !(state.tab === 'all' && state.cursor);
}

function selectTab(tab) {
  state.tab = tab;
  state.cursor = null;
  $('#tab-recent').setAttribute('aria-selected', String(tab === 'recent'));
  $('#tab-all').setAttribute('aria-selected', String(tab === 'all'));
  $('#filters').hidden = tab !== 'all';
  load();
}

// ---- forms -------------------------------------------------------------------------------------

function clearErrors(form) {
  form.querySelectorAll('.field-error, .form-error').forEach((node) => { node.textContent = ''; });
  form.querySelectorAll('[aria-invalid]').forEach((node) => node.removeAttribute('aria-invalid'));
}

/** Shows an API problem next to the field it names (or for the whole form). */
function showProblem(form, problem) {
  const field = problem.field;
  const slot = field && form.querySelector(`[data-error-for="${field}"]`);
  if (slot) {
    slot.textContent = problem.detail;
    form.querySelectorAll(`[data-field="${field}"]`).forEach((input) => input.setAttribute('aria-invalid', 'true'));
  } else {
    form.querySelector('.form-error').textContent = problem.detail || `HTTP ${problem.status}`;
  }
}

function open(dialog) {
  clearErrors(dialog.querySelector('form') || dialog);
  dialog.showModal();
}

function picker(container, exclude = []) {
  container.replaceChildren(...state.users.filter((user) => !exclude.includes(user.id)).map((user) =>
    el('label', {}, el('input', { type: 'checkbox', name: 'attendee', value: user.id }), user.name)));
}

const picked = (form) => [...form.querySelectorAll('input[name="attendee"]:checked')].map((input) => input.value);

function openSchedule(existing) {
  const dialog = $('#schedule-dialog');
  const form = $('#schedule-form');
  form.reset();
  form.dataset.id = existing?.id || '';
  form.dataset.etag = existing ? `"${existing.version}"` : '';
  $('#schedule-title').textContent = t(existing ? 'edit' : 'schedule');
  const zone = existing?.timezone || userZone();
  const select = $('#s-timezone');
  select.replaceChildren(...[...new Set([zone, ...ZONES])].map((z) => el('option', { value: z, text: z })));
  select.value = zone;
  picker($('.picker', form), [state.me.user]);
  if (existing) {
    const start = zonedParts(existing.start, zone);
    $('#s-subject').value = existing.subject;
    $('#s-date').value = start.date;
    $('#s-start').value = start.time;
    $('#s-end').value = zonedParts(existing.end, zone).time;
    $('#s-link').value = existing.links.related || '';
    form.querySelectorAll('input[name="attendee"]').forEach((input) => { input.checked = existing.attendees.includes(input.value); });
  } else {
    const tomorrow = zonedParts(new Date(Date.now() + 86400000).toISOString(), zone);
    $('#s-date').value = tomorrow.date;
    $('#s-start').value = '10:00';
    $('#s-end').value = '11:00';
  }
  open(dialog);
}

async function submitSchedule(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const zone = $('#s-timezone').value;
  const date = $('#s-date').value;
  if (!date || !$('#s-start').value || !$('#s-end').value) {
    showProblem(form, { field: 'start', detail: `${t('date')} / ${t('start')} / ${t('end')}` });
    return;
  }
  const start = zonedToUtc(date, $('#s-start').value, zone);
  // An end earlier than the start is on the next day (a conference across midnight).
  let end = zonedToUtc(date, $('#s-end').value, zone);
  if (end <= start) end = new Date(new Date(end).getTime() + 86400000).toISOString().replace('.000Z', 'Z');
  const body = { subject: $('#s-subject').value, start, end, timezone: zone, attendees: picked(form),
    related_link: $('#s-link').value.trim() || null };
  const id = form.dataset.id;
  const reply = id
    ? await api(`/api/v1/conferences/${id}`, { method: 'PATCH', body, ifMatch: form.dataset.etag })
    : await api('/api/v1/conferences', { method: 'POST', body: { mode: 'scheduled', ...body, related_link: body.related_link || undefined } });
  if (!reply.ok) { showProblem(form, reply.body); return; }
  $('#schedule-dialog').close();
  notice(reply.body.links_changed ? t('links_changed') : reply.status === 202 ? t('provisioning') : t(id ? 'saved' : 'created'));
  await load();
}

async function submitQuick(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const reply = await api('/api/v1/conferences', { method: 'POST', body: { mode: 'quick', subject: $('#quick-subject').value } });
  if (!reply.ok) { showProblem(form, reply.body); return; }
  $('#quick-dialog').close();
  const c = reply.body;
  $('#started-subject').textContent = `${c.subject} · ${t('number')} ${c.number}`;
  const enter = $('#started-enter');
  const link = c.links.host || c.links.attendee;
  if (link) { enter.href = link; enter.hidden = false; } else { enter.hidden = true; }
  $('#started-invite').onclick = () => { $('#started-dialog').close(); openInvite(c); };
  $('#started-dialog').showModal();
  await load();
}

async function submitJoin(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const reply = await api('/api/v1/conferences/join', { method: 'POST', body: { number: $('#join-number').value } });
  if (!reply.ok) { showProblem(form, reply.body); return; }
  $('#join-dialog').close();
  notice(t('joined'));
  await load();
  openDetail(reply.body.id);
}

function openInvite(c) {
  const form = $('#invite-form');
  form.dataset.id = c.id;
  picker($('.picker', form), [c.host, c.creator, ...c.attendees, ...c.joined]);
  open($('#invite-dialog'));
}

async function submitInvite(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const reply = await api(`/api/v1/conferences/${form.dataset.id}/invitations`, { method: 'POST', body: { attendees: picked(form) } });
  if (!reply.ok) { showProblem(form, reply.body); return; }
  $('#invite-dialog').close();
  notice(t('invited_ok'));
  await load();
}

async function cancelConference(c) {
  if (!confirm(t('confirm_cancel', { s: c.subject }))) return;
  const reply = await api(`/api/v1/conferences/${c.id}/cancel`, { method: 'POST', body: {} });
  notice(reply.ok ? t('cancelled_ok') : reply.body.detail);
  await load();
}

async function endConference(c) {
  if (!confirm(t('confirm_end', { s: c.subject }))) return;
  const reply = await api(`/api/v1/conferences/${c.id}/end`, { method: 'POST', body: {} });
  notice(reply.ok ? t('ended_ok') : reply.body.detail);
  await load();
}

function linkRow(label, url) {
  if (!url) return null;
  return el('div', { class: 'link-row' },
    el('strong', { text: label }),
    el('div', { class: 'url', text: url }),
    el('div', { class: 'link-actions' },
      el('button', { type: 'button', text: t('copy'), 'aria-label': `${t('copy')}: ${label}`, onclick: async () => {
        try { await navigator.clipboard.writeText(url); notice(t('copied')); } catch { notice(url); }
      } }),
      el('a', { class: 'button', href: url, target: '_blank', rel: 'noopener', text: t('open') })));
}

async function openDetail(id) {
  const reply = await api(`/api/v1/conferences/${id}`);
  if (!reply.ok) { notice(reply.body.detail || ''); return; }
  const c = reply.body;
  $('#detail-title').textContent = c.subject;
  const item = (label, value) => [el('dt', { text: label }), el('dd', { text: value })];
  $('#detail-info').replaceChildren(...[
    item(t('number'), c.number), item(t('status'), c.status_label), item(t('time'), when(c)), item(t('timezone'), c.timezone),
    item(t('host'), name(c.host)), item(t('attendees'), c.attendees.map(name).join('、') || t('none')), item(t('line'), c.line.name),
  ].flat());
  $('#detail-links').replaceChildren(...[linkRow(t('host_link'), c.links.host), linkRow(t('attendee_link'), c.links.attendee),
    linkRow(t('related'), c.links.related)].filter(Boolean));
  $('#detail-dialog').showModal();
}

// ---- start -------------------------------------------------------------------------------------

function translate() {
  document.documentElement.lang = state.lang === 'en' ? 'en' : 'zh-CN';
  document.title = t('title');
  document.querySelectorAll('[data-t]').forEach((node) => { node.textContent = t(node.dataset.t); });
  $('#lang').textContent = t('lang');
  if (state.me) $('#who').textContent = state.me.name + (state.me.admin ? t('me_admin') : '');
}

async function start() {
  const me = await api('/api/v1/me');
  if (!me.ok) return;
  state.me = me.body;
  state.users = (await api('/api/v1/directory/users')).body.items || [];
  translate();
  $('#lang').addEventListener('click', () => {
    state.lang = state.lang === 'en' ? 'zh' : 'en';
    localStorage.setItem('meetline.lang', state.lang);
    translate();
    load();
  });
  $('#tab-recent').addEventListener('click', () => selectTab('recent'));
  $('#tab-all').addEventListener('click', () => selectTab('all'));
  $('#more').addEventListener('click', () => load(true));
  $('#filters').addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    state.filters = { status: data.get('status'), q: data.get('q').trim() };
    load();
  });
  $('#open-join').addEventListener('click', () => { $('#join-form').reset(); open($('#join-dialog')); });
  $('#open-quick').addEventListener('click', () => { $('#quick-form').reset(); open($('#quick-dialog')); });
  $('#open-schedule').addEventListener('click', () => openSchedule(null));
  $('#schedule-form').addEventListener('submit', submitSchedule);
  $('#quick-form').addEventListener('submit', submitQuick);
  $('#join-form').addEventListener('submit', submitJoin);
  $('#invite-form').addEventListener('submit', submitInvite);
  document.querySelectorAll('dialog .cancel').forEach((button) => button.addEventListener('click', () => button.closest('dialog').close()));
  await load();
}

start();
