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
    meetings: '会议', chats: '聊天', ops: '运维看板', pick_members: '选择参会成员', video_call: '视频会议',
    launch: '发起视频会议', launch_only: '只有会议的创建人、召集人、联系人可以发起视频会议', creator: '创建人',
    convener: '召集人', contact: '联系人', no_meetings: '没有会议', no_chats: '没有聊天', range: '范围', day: '一天',
    week: '一周', timeline: '线路时间轴', utilisation: '线路利用率（未来 7 天）', rejections: '无空闲线路（按时段）',
    lines: '线路维护', maintenance: '维护中', active: '正常', enter_maintenance: '进入维护', leave_maintenance: '结束维护',
    moved: '已移到其他线路：{n} 个', stranded: '无法移动：{n} 个', lag: '投影延迟（事件）', provider_failures: '服务商调用失败',
    no_free_line: '无空闲线路次数', members: '成员', conference_links: '视频会议', single: '单聊', group: '群聊',
    add_line: '添加线路', line_name: '线路名称', provider: '视频服务商', provider_builtin: '内置（Jitsi）',
    provider_zoom: 'Zoom', provider_tencent: '腾讯会议', line_added: '线路已添加', provider_code: '服务商会议号',
    optional: '（选填）', secret_kept: '保存后加密存放，不再显示', suggested: '最近的空闲时间（点击即预订）：',
    search_people: '输入姓名、拼音或首字母搜索', remove: '移除', no_match: '没有找到', repeat: '重复', repeat_none: '不重复',
    daily: '每天', weekly: '每周', monthly: '每月（同一周次）', repeat_on: '重复于', count: '次数', until: '或截止日期',
    skip_busy: '跳过没有空闲线路的场次，预订其余场次', series: '周期会议', scope: '修改哪些场次', scope_this: '仅此场',
    scope_following: '此场及以后各场', scope_all: '全部未开始的场次', series_created: '已预订 {n} 场周期会议',
    series_skipped: '，{m} 场因没有空闲线路跳过：{list}', conflicts: '以下场次没有空闲线路：', series_saved: '已保存 {n} 场',
    series_cancelled: '已取消 {n} 场', cancel_which: '取消哪些场次', ok: '确定',
    rule_daily: '每 {i} 天', rule_weekly: '每 {i} 周（{d}）', rule_monthly: '每 {i} 个月', rule_count: '，共 {n} 场',
    rule_until: '，至 {u}', wd: '一,二,三,四,五,六,日',
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
    meetings: 'Meetings', chats: 'Chats', ops: 'Operations', pick_members: 'Pick who joins', video_call: 'Video call',
    launch: 'Start video conference', launch_only: 'Only the creator, convener or contact can start its video conference',
    creator: 'Creator', convener: 'Convener', contact: 'Contact', no_meetings: 'No meetings', no_chats: 'No chats',
    range: 'Range', day: 'Day', week: 'Week', timeline: 'Line timeline', utilisation: 'Line utilisation (next 7 days)',
    rejections: 'No free line (by hour of day)', lines: 'Line maintenance', maintenance: 'Maintenance', active: 'Active',
    enter_maintenance: 'Enter maintenance', leave_maintenance: 'Leave maintenance', moved: 'Moved to other lines: {n}',
    stranded: 'Could not be moved: {n}', lag: 'Projection lag (events)', provider_failures: 'Provider failures',
    no_free_line: 'No-free-line rejections', members: 'Members', conference_links: 'Video conference', single: 'One-to-one',
    group: 'Group', add_line: 'Add a line', line_name: 'Line name', provider: 'Video provider',
    provider_builtin: 'Builtin (Jitsi)', provider_zoom: 'Zoom', provider_tencent: 'Tencent Meeting', line_added: 'Line added',
    provider_code: 'Provider meeting code', optional: ' (optional)', secret_kept: 'stored encrypted, never shown again',
    suggested: 'Nearest free times (click to book):',
    search_people: 'Type a name, pinyin or initials', remove: 'Remove', no_match: 'No one found', repeat: 'Repeat',
    repeat_none: 'Does not repeat', daily: 'Daily', weekly: 'Weekly', monthly: 'Monthly (same weekday)', repeat_on: 'On',
    count: 'Occurrences', until: 'or until', skip_busy: 'Skip occurrences with no free line, book the rest',
    series: 'Series', scope: 'Change which occurrences', scope_this: 'This one', scope_following: 'This and later ones',
    scope_all: 'All not started', series_created: '{n} conferences of the series booked',
    series_skipped: '; {m} skipped for want of a line: {list}', conflicts: 'No free line for these occurrences:',
    series_saved: '{n} saved', series_cancelled: '{n} cancelled', cancel_which: 'Cancel which occurrences', ok: 'OK',
    rule_daily: 'every {i} day(s)', rule_weekly: 'every {i} week(s) ({d})', rule_monthly: 'every {i} month(s)',
    rule_count: ', {n} in all', rule_until: ', until {u}', wd: 'Mo,Tu,We,Th,Fr,Sa,Su',
  },
};

const ZONES = ['Asia/Shanghai', 'Asia/Hong_Kong', 'Asia/Tokyo', 'Asia/Singapore', 'Europe/London', 'Europe/Berlin',
  'America/New_York', 'America/Los_Angeles', 'UTC'];

const state = { lang: localStorage.getItem('meetline.lang') || (navigator.language.startsWith('en') ? 'en' : 'zh'),
  me: null, tab: 'recent', cursor: null, position: 0, filters: { status: '', q: '' } };

const $ = (selector, root = document) => root.querySelector(selector);
const t = (key, vars = {}) => (dict[state.lang][key] || key).replace(/\{(\w+)\}/g, (_, name) => vars[name] ?? '');

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'text') node.textContent = value;
    // Through the CSSOM: the Content-Security-Policy allows no inline style attributes.
    else if (name === 'style') Object.assign(node.style, value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** `url` when it is an absolute http(s) URL, else null: only those become links (never `javascript:`). */
function safeHref(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? parsed.href : null;
  } catch {
    return null;
  }
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

/** Names of the users the app has met (search results, the signed-in user): the directory is
 * never loaded whole — a company's may hold tens of thousands. */
const names = new Map();
const remember = (users) => { for (const user of users || []) names.set(user.id, user.name); };
const name = (id) => names.get(id) || id;

/** Ids looked up and not in the directory: shown as they are, not asked for again. */
const nameless = new Set();

/** Looks up the names of `ids` not met yet, exactly (`?ids=`, a hundred a request). */
async function knowNames(ids) {
  const missing = [...new Set(ids)].filter((id) => id && !names.has(id) && !nameless.has(id));
  for (let at = 0; at < missing.length; at += 100) {
    const chunk = missing.slice(at, at + 100);
    try {
      const reply = await api(`/api/v1/directory/users?${new URLSearchParams({ ids: chunk.join(',') })}`);
      if (!reply.ok) return;
      remember(reply.body.items);
      for (const id of chunk) if (!names.has(id)) nameless.add(id);
    } catch { return; }
  }
}

const WEEKDAYS = ['MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'];

/** A series' rule in words: 每 1 周（一、四），共 10 场. */
function ruleText(rule) {
  if (!rule) return '';
  const days = rule.weekdays.map((code) => t('wd').split(',')[WEEKDAYS.indexOf(code)]).join(state.lang === 'en' ? ' ' : '、');
  let text = t(`rule_${rule.frequency}`, { i: rule.interval, d: days });
  if (rule.until) text += t('rule_until', { u: rule.until });
  else if (rule.count) text += t('rule_count', { n: rule.count });
  return text;
}

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
      c.series_id ? el('span', { class: 'badge series', text: t('series'), title: ruleText(c.recurrence) }) : null,
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

/**
 * A type-ahead people picker: the directory is searched as one types (name, id, pinyin in full or
 * by initials: 张伟 is found by "zw"), and each person picked shows as a chip. `only` limits the
 * choice to some ids (a chat's members: matched here by id and name, and by the directory's
 * search for pinyin); `exclude` leaves some out (the host, those invited).
 */
function peoplePicker(container, { exclude = [], only = null, selected = [] } = {}) {
  const form = container.closest('form');
  const listId = `${form.id}-people`;
  const chips = el('ul', { class: 'chips' });
  const options = el('ul', { id: listId, role: 'listbox', class: 'options', hidden: true, 'aria-label': t('attendees') });
  const input = el('input', { type: 'text', class: 'people-search', role: 'combobox', 'aria-autocomplete': 'list',
    'aria-expanded': 'false', 'aria-controls': listId, 'aria-label': t('search_people'), placeholder: t('search_people'),
    autocomplete: 'off', 'data-field': 'attendees' });
  const members = only ? new Set(only) : null;
  let found = [];
  let shownFor = null;
  let active = -1;
  let asked = 0;
  let timer = null;
  const chosen = () => [...chips.querySelectorAll('.chip')].map((chip) => chip.dataset.id);
  // Closing forgets the list, and any answer still on its way is not shown.
  const close = () => {
    asked += 1;
    found = [];
    shownFor = null;
    options.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
  };
  const addChip = (id) => {
    if (chosen().includes(id)) return;
    const chip = el('li', { class: 'chip', 'data-id': id },
      el('span', { text: name(id) }),
      el('button', { type: 'button', text: '×', 'aria-label': `${t('remove')} ${name(id)}`, onclick: () => { chip.remove(); input.focus(); } }));
    chips.append(chip);
  };
  const highlight = (index) => {
    active = index;
    [...options.children].forEach((option, at) => option.setAttribute('aria-selected', String(at === index)));
    if (index >= 0 && options.children[index]) input.setAttribute('aria-activedescendant', options.children[index].id);
    else input.removeAttribute('aria-activedescendant');
  };
  const choose = (user) => { addChip(user.id); input.value = ''; close(); input.focus(); };
  const show = (q) => {
    shownFor = q;
    options.replaceChildren(...(found.length ? found.map((user, index) => el('li', { role: 'option', id: `${listId}-${index}`,
      'aria-selected': 'false', 'data-id': user.id, onmousedown: (event) => { event.preventDefault(); choose(user); } },
    el('span', { text: user.name }), el('small', { text: user.id }))) : [el('li', { class: 'none', text: t('no_match') })]));
    options.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    highlight(found.length ? 0 : -1);
  };
  const search = async () => {
    const q = input.value.trim();
    const ask = ++asked;
    if (!q && !members) { close(); return; }
    const skip = new Set([...exclude, ...chosen()]);
    let users = [];
    if (members) {
      // A chat's members: by id and known name here; by pinyin through the directory.
      await knowNames([...members].slice(0, 200));
      const lower = q.toLowerCase();
      users = [...members].filter((id) => !q || id.toLowerCase().includes(lower) || name(id).toLowerCase().includes(lower))
        .map((id) => ({ id, name: name(id) }));
    }
    if (q) {
      const reply = await api(`/api/v1/directory/users?${new URLSearchParams({ q, limit: members ? '200' : '8' })}`);
      if (ask !== asked) return;
      if (reply.ok) {
        remember(reply.body.items);
        for (const user of reply.body.items || []) {
          if ((!members || members.has(user.id)) && !users.some((known) => known.id === user.id)) users.push(user);
        }
      }
    }
    if (ask !== asked) return;
    found = users.filter((user) => !skip.has(user.id)).slice(0, 8);
    show(q);
  };
  input.addEventListener('input', () => {
    clearTimeout(timer);
    close();
    timer = setTimeout(search, 120);
  });
  input.addEventListener('focus', () => { if (members) search(); });
  input.addEventListener('blur', () => setTimeout(() => { clearTimeout(timer); close(); }, 100));
  input.addEventListener('keydown', (event) => {
    // Keys that commit an input method's composition (Chinese, say) are the IME's.
    if (event.isComposing || event.keyCode === 229) return;
    if (event.key === 'ArrowDown') {
      event.preventDefault();
      if (options.hidden) { clearTimeout(timer); search(); } else if (found.length) highlight(Math.min(active + 1, found.length - 1));
    } else if (event.key === 'ArrowUp' && found.length) { event.preventDefault(); highlight(Math.max(active - 1, 0)); }
    else if (event.key === 'Enter') {
      // Enter picks the highlighted person of the list shown for what is typed; it never
      // submits the form from the search box.
      event.preventDefault();
      if (!options.hidden && shownFor === input.value.trim() && found[active]) choose(found[active]);
    } else if (event.key === 'Escape' && !options.hidden) { event.preventDefault(); event.stopPropagation(); close(); }
  });
  container.replaceChildren(chips, el('div', { class: 'combo' }, input, options));
  for (const id of selected) addChip(id);
}

const picked = (form) => [...form.querySelectorAll('.chip[data-id]')].map((chip) => chip.dataset.id);

async function openSchedule(existing) {
  if (existing) await knowNames([...existing.attendees, existing.host]);
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
  showSuggestions(form, []);
  showConflicts([]);
  // Booking a series, or editing an occurrence of one (which occurrences the change is for).
  $('#s-repeat').value = '';
  $('#s-repeat-row').hidden = Boolean(existing);
  repeatChanged();
  $('#s-scope').hidden = !existing?.series_id;
  form.querySelector('input[name="scope"][value="this"]').checked = true;
  if (existing) {
    const start = zonedParts(existing.start, zone);
    $('#s-subject').value = existing.subject;
    $('#s-date').value = start.date;
    $('#s-start').value = start.time;
    $('#s-end').value = zonedParts(existing.end, zone).time;
    $('#s-link').value = existing.links.related || '';
  } else {
    form.dataset.original = '';
    const tomorrow = zonedParts(new Date(Date.now() + 86400000).toISOString(), zone);
    $('#s-date').value = tomorrow.date;
    $('#s-start').value = '10:00';
    $('#s-end').value = '11:00';
  }
  peoplePicker($('.picker', form), { exclude: [existing?.host || state.me.user], selected: existing?.attendees || [] });
  // What the form showed: a change for several occurrences sends only what was changed.
  if (existing) form.dataset.original = JSON.stringify(scheduleBody());
  open(dialog);
}

/** Shows the weekday, count and until fields for a repeating booking. */
function repeatChanged() {
  const frequency = $('#s-repeat').value;
  $('#s-repeat-more').hidden = !frequency;
  $('#s-weekdays').hidden = frequency !== 'weekly';
  const box = $('#s-weekdays');
  if (frequency === 'weekly' && (!box.querySelector('input:checked') || box.dataset.auto === '1')) {
    // The start's weekday, until the user picks days: it follows the date.
    const date = $('#s-date').value;
    const day = date ? (new Date(`${date}T12:00:00Z`).getUTCDay() + 6) % 7 : 0;
    box.querySelectorAll('input').forEach((input) => { input.checked = input.value === WEEKDAYS[day]; });
    box.dataset.auto = '1';
  }
}

/** A series refused whole: the occurrences no line could take. */
function showConflicts(conflicts) {
  const box = $('#s-conflicts');
  const zone = $('#s-timezone').value;
  box.hidden = !conflicts?.length;
  $('ul', box).replaceChildren(...(conflicts || []).map((slot) => {
    const start = zonedParts(slot.start, zone);
    return el('li', { text: `${start.date} ${start.time}–${zonedParts(slot.end, zone).time}` });
  }));
}

/** The form's fields as an edit or a booking sends them. */
function scheduleBody() {
  const zone = $('#s-timezone').value;
  const date = $('#s-date').value;
  const start = zonedToUtc(date, $('#s-start').value, zone);
  // An end earlier than the start is on the next day (a conference across midnight).
  let end = zonedToUtc(date, $('#s-end').value, zone);
  if (end <= start) end = new Date(new Date(end).getTime() + 86400000).toISOString().replace('.000Z', 'Z');
  return { subject: $('#s-subject').value, start, end, timezone: zone, attendees: picked($('#schedule-form')),
    related_link: $('#s-link').value.trim() || null };
}

/** The recurrence of the schedule form, or undefined. */
function recurrenceOf() {
  const frequency = $('#s-repeat').value;
  if (!frequency) return undefined;
  const rule = { frequency };
  if (frequency === 'weekly') rule.weekdays = [...$('#s-weekdays').querySelectorAll('input:checked')].map((input) => input.value);
  const until = $('#s-until').value;
  if (until) rule.until = until; else rule.count = Number($('#s-count').value || 0);
  return rule;
}

/** A refusal for want of a line: its nearest free times as one-click choices under the message. */
function showSuggestions(form, suggestions) {
  const box = $('#s-suggestions');
  const zone = $('#s-timezone').value;
  box.hidden = !suggestions?.length;
  $('.choices', box).replaceChildren(...(suggestions || []).map((slot) => {
    const start = zonedParts(slot.start, zone);
    const end = zonedParts(slot.end, zone);
    const label = `${start.date} ${start.time}–${end.time}`;
    return el('button', { type: 'button', class: 'choice', text: label, onclick: () => {
      $('#s-date').value = start.date;
      $('#s-start').value = start.time;
      $('#s-end').value = end.time;
      form.requestSubmit();
    } });
  }));
}

async function submitSchedule(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  showSuggestions(form, []);
  showConflicts([]);
  const date = $('#s-date').value;
  if (!date || !$('#s-start').value || !$('#s-end').value) {
    showProblem(form, { field: 'start', detail: `${t('date')} / ${t('start')} / ${t('end')}` });
    return;
  }
  let body = scheduleBody();
  const id = form.dataset.id;
  const scope = id && !$('#s-scope').hidden ? form.querySelector('input[name="scope"]:checked').value : 'this';
  if (scope !== 'this' && form.dataset.original) {
    // For several occurrences, only what was changed here (each keeps its own other fields).
    const original = JSON.parse(form.dataset.original);
    const changed = {};
    for (const [key, value] of Object.entries(body)) {
      if (JSON.stringify(value) !== JSON.stringify(original[key])) changed[key] = value;
    }
    // A new time moves them all; a new end alone gives them all the new length.
    if (changed.end && !changed.start) changed.start = body.start;
    body = changed;
  }
  const recurrence = id ? undefined : recurrenceOf();
  const create = { mode: 'scheduled', ...body, related_link: body.related_link || undefined, recurrence,
    on_conflict: recurrence ? ($('#s-skip').checked ? 'skip' : 'reject') : undefined };
  const reply = id
    ? await api(`/api/v1/conferences/${id}${scope === 'this' ? '' : `?scope=${scope}`}`, { method: 'PATCH', body, ifMatch: form.dataset.etag })
    : await api('/api/v1/conferences', { method: 'POST', body: create });
  if (!reply.ok) {
    showProblem(form, reply.body);
    showSuggestions(form, reply.body.suggestions);
    showConflicts(reply.body.conflicts);
    return;
  }
  $('#schedule-dialog').close();
  if (reply.body.series_id && reply.body.items) {
    const zone = $('#s-timezone').value;
    const skipped = (reply.body.skipped || []).map((slot) => { const at = zonedParts(slot.start, zone); return `${at.date} ${at.time}`; });
    notice(t('series_created', { n: reply.body.items.length }) + (skipped.length ? t('series_skipped', { m: skipped.length, list: skipped.join('、') }) : ''));
  } else if (reply.body.items) {
    const moved = reply.body.items.some((item) => item.links_changed);
    notice(t('series_saved', { n: reply.body.items.length }) + (moved ? ` · ${t('links_changed')}` : ''));
  } else {
    notice(reply.body.links_changed ? t('links_changed') : reply.status === 202 ? t('provisioning') : t(id ? 'saved' : 'created'));
  }
  await load();
}

async function submitQuick(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const reply = await api('/api/v1/conferences', { method: 'POST', body: { mode: 'quick', subject: $('#quick-subject').value } });
  if (!reply.ok) { showProblem(form, reply.body); return; }
  $('#quick-dialog').close();
  showStarted(reply.body);
  await load();
}

/** After a quick conference starts: enter it now, or invite colleagues. */
function showStarted(c) {
  $('#started-subject').textContent = `${c.subject} · ${t('number')} ${c.number}`;
  const enter = $('#started-enter');
  const link = safeHref(c.links.host || c.links.attendee);
  if (link) { enter.href = link; enter.hidden = false; } else { enter.hidden = true; }
  $('#started-invite').onclick = () => { $('#started-dialog').close(); openInvite(c); };
  $('#started-dialog').showModal();
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
  peoplePicker($('.picker', form), { exclude: [c.host, c.creator, ...c.attendees, ...c.joined] });
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
  let scope = 'this';
  if (c.series_id) {
    scope = await askScope(t('confirm_cancel', { s: c.subject }));
    if (!scope) return;
  } else if (!confirm(t('confirm_cancel', { s: c.subject }))) return;
  const reply = await api(`/api/v1/conferences/${c.id}/cancel${scope === 'this' ? '' : `?scope=${scope}`}`, { method: 'POST', body: {} });
  notice(!reply.ok ? reply.body.detail : reply.body.items ? t('series_cancelled', { n: reply.body.items.length }) : t('cancelled_ok'));
  await load();
}

/** Asks which occurrences of a series an action is for: 'this', 'following', 'all' or null. */
function askScope(question) {
  const dialog = $('#scope-dialog');
  const form = $('#scope-form');
  form.reset();
  $('#scope-question').textContent = question;
  return new Promise((resolve) => {
    form.onsubmit = (event) => { event.preventDefault(); dialog.close(); resolve(form.querySelector('input[name="cancel-scope"]:checked').value); };
    dialog.onclose = () => resolve(null);
    dialog.showModal();
  });
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
      safeHref(url) ? el('a', { class: 'button', href: safeHref(url), target: '_blank', rel: 'noopener noreferrer', text: t('open') }) : null));
}

async function openDetail(id) {
  const reply = await api(`/api/v1/conferences/${id}`);
  if (!reply.ok) { notice(reply.body.detail || ''); return; }
  const c = reply.body;
  await knowNames([c.host, ...c.attendees]);
  $('#detail-title').textContent = c.subject;
  const item = (label, value) => [el('dt', { text: label }), el('dd', { text: value })];
  $('#detail-info').replaceChildren(...[
    item(t('number'), c.number), item(t('status'), c.status_label), item(t('time'), when(c)), item(t('timezone'), c.timezone),
    item(t('host'), name(c.host)), item(t('attendees'), c.attendees.map(name).join('、') || t('none')), item(t('line'), c.line.name),
    ...(c.provider_meeting_code ? [item(t('provider_code'), c.provider_meeting_code)] : []),
    ...(c.series_id ? [item(t('series'), ruleText(c.recurrence))] : []),
  ].flat());
  $('#detail-links').replaceChildren(...[linkRow(t('host_link'), c.links.host), linkRow(t('attendee_link'), c.links.attendee),
    linkRow(t('related'), c.links.related)].filter(Boolean));
  $('#detail-dialog').showModal();
}

// ---- meeting cards ---------------------------------------------------------------------------

function meetingCard(m) {
  const links = el('div', { class: 'meeting-links links' });
  const roles = `${t('creator')} ${name(m.creator)} · ${t('convener')} ${name(m.convener)} · ${t('contact')} ${name(m.contact)}`;
  const action = m.can_launch
    ? el('button', { type: 'button', class: 'primary', text: t('launch'), 'aria-label': `${t('launch')} ${m.subject}`,
      onclick: () => launch(m, links) })
    : el('p', { class: 'note', text: t('launch_only') });
  return el('li', { class: 'row-item', 'data-meeting': m.id },
    el('h3', { text: m.subject }),
    el('div', { class: 'row-actions' }, action),
    el('div', { class: 'meta' }, el('span', { text: when(m) }), el('span', { text: roles })),
    links);
}

async function launch(m, links) {
  let reply = await api(`/api/v1/meetings/${m.id}/conference`, { method: 'POST', body: {} });
  if (reply.status === 409 && reply.body.code === 'conference_exists') reply = await api(`/api/v1/conferences/${reply.body.conference_id}`);
  if (!reply.ok) { $('#meetings-notice').textContent = reply.body.detail || ''; return; }
  const c = reply.body;
  links.replaceChildren(el('strong', { text: `${t('conference_links')} · ${t('number')} ${c.number} · ${c.status_label}` }),
    ...[linkRow(t('host_link'), c.links.host), linkRow(t('attendee_link'), c.links.attendee)].filter(Boolean));
}

async function renderMeetings() {
  const reply = await api('/api/v1/my/meetings');
  const items = reply.body.items || [];
  await knowNames(items.flatMap((m) => [m.creator, m.convener, m.contact]));
  $('#meetings').replaceChildren(...(items.length ? items.map(meetingCard) : [el('li', { class: 'empty', text: t('no_meetings') })]));
}

// ---- chats -------------------------------------------------------------------------------------

async function renderChats() {
  const reply = await api('/api/v1/my/chats');
  const chats = reply.body.items || [];
  const list = $('#chats');
  list.replaceChildren(...(chats.length ? chats.map((chat) => el('li', {}, el('button', { type: 'button', 'aria-pressed': 'false',
    text: `${chat.name} (${t(chat.kind)})`, onclick: (event) => selectChat(chat, event.target) }))) : [el('li', { class: 'empty', text: t('no_chats') })]));
}

function selectChat(chat, button) {
  document.querySelectorAll('#chats button').forEach((other) => other.setAttribute('aria-pressed', String(other === button)));
  const form = $('#chat-form');
  form.hidden = false;
  form.dataset.id = chat.id;
  clearErrors(form);
  $('#chat-title').textContent = chat.name;
  peoplePicker($('.picker', form), { only: chat.members.filter((id) => id !== state.me.user) });
}

async function submitChat(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const reply = await api(`/api/v1/chats/${form.dataset.id}/conference`, { method: 'POST', body: { attendees: picked(form) } });
  if (!reply.ok) { showProblem(form, reply.body); return; }
  showStarted(reply.body);
}

// ---- operators' dashboard ------------------------------------------------------------------------

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}
const COLORS = { not_started: '#0b5cad', in_progress: '#126b3a', ended: '#7b8594', manually_ended: '#b86e00' };

function timeline(data) {
  const from = new Date(data.from).getTime();
  const to = new Date(data.to).getTime();
  const width = 1000; const left = 130; const row = 34; const top = 26;
  const height = top + data.lines.length * row + 8;
  const x = (ms) => left + ((Math.min(Math.max(ms, from), to) - from) / (to - from)) * (width - left - 10);
  const days = (to - from) / 86400000;
  const step = days <= 1 ? 2 * 3600000 : 86400000;
  const locale = state.lang === 'en' ? 'en-GB' : 'zh-CN';
  const label = new Intl.DateTimeFormat(locale, days <= 1 ? { timeZone: userZone(), hour: '2-digit', minute: '2-digit' }
    : { timeZone: userZone(), month: 'numeric', day: 'numeric', weekday: 'short' });
  const grid = [];
  for (let at = from; at <= to; at += step) {
    // The closing edge gets its line but no label: a label there would run off the chart.
    grid.push(svg('line', { x1: x(at), x2: x(at), y1: top - 4, y2: height, stroke: '#e2e7ee' }),
      at + step <= to ? svg('text', { x: x(at) + 2, y: 16, 'font-size': 11, fill: '#4d5a6b' }, label.format(new Date(at))) : null);
  }
  const rows = data.lines.map((line, index) => {
    const y = top + index * row;
    const shade = line.status === 'maintenance'
      ? svg('rect', { x: left, y, width: width - left - 10, height: row - 2, fill: '#fbead0' }) : null;
    const bars = line.conferences.map((c) => {
      const x1 = x(new Date(c.start).getTime()); const x2 = Math.max(x(new Date(c.end).getTime()), x1 + 2);
      return svg('g', { class: 'bar', 'data-subject': c.subject },
        svg('title', {}, `${c.subject} · ${when(c)} · ${t(c.status)}${c.stranded ? ' · ' + t('stranded', { n: 1 }) : ''}`),
        svg('rect', { x: x1, y: y + 5, width: x2 - x1, height: row - 12, rx: 3, fill: COLORS[c.status] || '#7b8594',
          stroke: c.stranded ? '#b42318' : 'none', 'stroke-width': 2 }),
        x2 - x1 > 56 ? svg('text', { x: x1 + 4, y: y + row / 2 + 4, 'font-size': 11, fill: '#fff' }, c.subject.slice(0, Math.floor((x2 - x1) / 12))) : null);
    });
    return svg('g', {}, shade,
      svg('text', { x: 4, y: y + row / 2 + 4, 'font-size': 12, fill: '#1c2430' }, `${line.name}${line.status === 'maintenance' ? ' · ' + t('maintenance') : ''}`),
      svg('line', { x1: 0, x2: width, y1: y + row - 1, y2: y + row - 1, stroke: '#eef1f5' }), bars);
  });
  const legend = el('div', { class: 'legend' }, ...Object.entries(COLORS).map(([status, color]) =>
    el('span', {}, el('i', { style: { background: color } }), t(status))), el('span', {}, el('i', { style: { background: '#fbead0' } }), t('maintenance')));
  return [svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': t('timeline') }, grid, rows), legend];
}

function barChart(values, labels, title) {
  const width = 480; const height = 170; const max = Math.max(1, ...values); const barWidth = (width - 20) / values.length;
  return svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title },
    values.map((value, i) => {
      const h = (value / max) * (height - 40);
      return svg('g', {}, svg('title', {}, `${labels[i]}: ${value}`),
        svg('rect', { x: 10 + i * barWidth + 1, y: height - 22 - h, width: barWidth - 2, height: h, fill: '#0b5cad' }),
        values.length <= 12 || i % 3 === 0 ? svg('text', { x: 10 + i * barWidth + 2, y: height - 8, 'font-size': 10, fill: '#4d5a6b' }, labels[i]) : null);
    }));
}

async function renderOps() {
  const zone = userZone();
  if (!$('#ops-day').value) $('#ops-day').value = zonedParts(new Date().toISOString(), zone).date;
  const from = zonedToUtc($('#ops-day').value, '00:00', zone);
  const to = new Date(new Date(from).getTime() + Number($('#ops-span').value) * 86400000).toISOString().replace('.000Z', 'Z');
  const [summary, lines] = await Promise.all([api('/api/v1/ops/summary'),
    api(`/api/v1/ops/timeline?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`)]);
  if (!summary.ok || !lines.ok) { $('#ops-notice').textContent = (summary.body.detail || lines.body.detail || ''); return; }
  const s = summary.body;
  const card = (label, value) => el('div', { class: 'card' }, el('div', { class: 'value', text: String(value) }), el('div', { class: 'label', text: label }));
  $('#ops-cards').replaceChildren(
    ...['not_started', 'in_progress', 'ended', 'manually_ended', 'cancelled'].map((status) => card(t(status), s.by_status[status] || 0)),
    card(t('no_free_line'), s.no_free_line_rejections), card(t('provider_failures'), s.provider_failures), card(t('lag'), s.projection_lag));
  $('#ops-timeline').replaceChildren(...timeline(lines.body));
  const util = lines.body.lines.map((line) => Math.round((s.utilisation[line.id] || 0) * 100));
  $('#ops-utilisation').replaceChildren(barChart(util, lines.body.lines.map((line) => `${line.name} ${util[lines.body.lines.indexOf(line)]}%`), t('utilisation')));
  const byHour = new Array(24).fill(0);
  for (const [hour, count] of s.rejections_by_hour) {
    const local = Number(new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', hourCycle: 'h23' }).format(new Date(hour.replace('Z', ':00Z'))));
    byHour[local] += count;
  }
  $('#ops-rejections').replaceChildren(barChart(byHour, byHour.map((_, h) => `${h}`), t('rejections')));
  $('#ops-lines').replaceChildren(...lines.body.lines.map((line) => el('li', { class: 'row-item' },
    el('h3', { text: line.name }),
    el('div', { class: 'row-actions' }, el('button', { type: 'button', 'aria-label': `${t(line.status === 'maintenance' ? 'leave_maintenance' : 'enter_maintenance')} ${line.name}`,
      text: t(line.status === 'maintenance' ? 'leave_maintenance' : 'enter_maintenance'), onclick: () => toggleMaintenance(line) })),
    el('div', { class: 'meta' }, el('span', { class: `badge ${line.status === 'maintenance' ? 'manually_ended' : 'in_progress'}`, text: t(line.status === 'maintenance' ? 'maintenance' : 'active') }),
      el('span', { text: t(`provider_${line.provider}`) })))));
}

/** The account settings each provider's lines take (API.md): key, whether required, whether secret. */
const PROVIDER_SETTINGS = {
  builtin: [],
  tencent: [['app_id', true], ['sdk_id', false], ['secret_id', true], ['secret_key', true, true], ['user_id', true]],
  zoom: [['account_id', true], ['client_id', true], ['client_secret', true, true], ['user_id', true], ['webhook_secret', false, true]],
};

function renderLineSettings() {
  const fields = PROVIDER_SETTINGS[$('#line-provider').value] || [];
  $('#line-settings').replaceChildren(...fields.flatMap(([key, required, secret]) => [
    el('label', { for: `line-setting-${key}`, text: `${key}${required ? '' : t('optional')}${secret ? ` · ${t('secret_kept')}` : ''}` }),
    el('input', { id: `line-setting-${key}`, name: key, 'data-field': `settings.${key}`, 'data-setting': key,
      type: secret ? 'password' : 'text', autocomplete: secret ? 'new-password' : 'off', spellcheck: 'false' }),
    el('p', { class: 'field-error', 'data-error-for': `settings.${key}` }),
  ]));
}

async function submitLine(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const provider = $('#line-provider').value;
  const body = { name: $('#line-name').value, provider };
  const settings = {};
  form.querySelectorAll('[data-setting]').forEach((input) => { if (input.value.trim()) settings[input.dataset.setting] = input.value.trim(); });
  if (Object.keys(settings).length) body.settings = settings;
  const reply = await api('/api/v1/lines', { method: 'POST', body });
  if (!reply.ok) { showProblem(form, reply.body); return; }
  form.reset();
  renderLineSettings();
  $('#ops-notice').textContent = `${reply.body.name}: ${t('line_added')}`;
  await renderOps();
}

async function toggleMaintenance(line) {
  const status = line.status === 'maintenance' ? 'active' : 'maintenance';
  const reply = await api(`/api/v1/lines/${line.id}`, { method: 'PATCH', body: { status } });
  const body = reply.body;
  $('#ops-notice').textContent = !reply.ok ? body.detail
    : status === 'maintenance' ? `${line.name}: ${t('moved', { n: (body.moved || []).length })}, ${t('stranded', { n: (body.stranded || []).length })}` : `${line.name}: ${t('active')}`;
  await renderOps();
}

// ---- views and live refresh ----------------------------------------------------------------------

const views = { conferences: () => load(), meetings: renderMeetings, chats: renderChats, ops: renderOps };

function currentView() {
  const view = location.hash.replace(/^#\/?/, '').split('/')[0] || 'conferences';
  return view in views && (view !== 'ops' || state.me?.admin) ? view : 'conferences';
}

function route() {
  const view = currentView();
  for (const name of Object.keys(views)) $(`#view-${name}`).hidden = name !== view;
  document.querySelectorAll('.views a').forEach((link) => {
    if (link.dataset.view === view) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  });
  views[view]();
}

let refreshTimer = null;
let leaving = false;
function live() {
  const source = new EventSource('/api/v1/events/stream');
  // Signing out or leaving: stop listening, and refresh nothing more.
  const stop = () => { leaving = true; clearTimeout(refreshTimer); source.close(); };
  window.addEventListener('pagehide', stop);
  document.querySelector('form[action="/signout"]').addEventListener('submit', stop);
  source.addEventListener('position', (event) => {
    const position = Number(event.data);
    if (position <= state.position) return;
    state.position = position;
    clearTimeout(refreshTimer);
    // Refresh what is on screen, unless the user is in the middle of a form.
    refreshTimer = setTimeout(() => { if (!leaving && !document.querySelector('dialog[open]')) views[currentView()](); }, 250);
  });
}

// ---- start -------------------------------------------------------------------------------------

function translate() {
  document.documentElement.lang = state.lang === 'en' ? 'en' : 'zh-CN';
  document.title = t('title');
  document.querySelectorAll('[data-t]').forEach((node) => { node.textContent = t(node.dataset.t); });
  $('#lang').textContent = t('lang');
  document.querySelectorAll('#s-weekdays label').forEach((label, index) => { label.lastChild.textContent = t('wd').split(',')[index]; });
  document.querySelectorAll('.people-search').forEach((input) => { input.placeholder = t('search_people'); input.setAttribute('aria-label', t('search_people')); });
  renderLineSettings();
  if (state.me) $('#who').textContent = state.me.name + (state.me.admin ? t('me_admin') : '');
}

async function start() {
  const me = await api('/api/v1/me');
  if (!me.ok) return;
  state.me = me.body;
  names.set(state.me.user, state.me.name);
  translate();
  $('#lang').addEventListener('click', () => {
    state.lang = state.lang === 'en' ? 'zh' : 'en';
    localStorage.setItem('meetline.lang', state.lang);
    translate();
    route();
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
  $('#s-repeat').addEventListener('change', repeatChanged);
  $('#s-date').addEventListener('change', repeatChanged);
  $('#s-weekdays').addEventListener('change', () => { $('#s-weekdays').dataset.auto = '0'; });
  $('#quick-form').addEventListener('submit', submitQuick);
  $('#join-form').addEventListener('submit', submitJoin);
  $('#invite-form').addEventListener('submit', submitInvite);
  document.querySelectorAll('dialog .cancel').forEach((button) => button.addEventListener('click', () => button.closest('dialog').close()));
  $('#chat-form').addEventListener('submit', submitChat);
  $('#ops-range').addEventListener('submit', (event) => { event.preventDefault(); renderOps(); });
  $('#line-form').addEventListener('submit', submitLine);
  $('#line-provider').addEventListener('change', renderLineSettings);
  renderLineSettings();
  $('.views a[data-view="ops"]').hidden = !state.me.admin;
  window.addEventListener('hashchange', route);
  route();
  live();
}

start();
