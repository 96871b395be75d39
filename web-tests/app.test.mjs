// The "My video conferences" app in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core), at a PC and a mobile viewport, against the real binary with demo data.
// Screenshots of each screen go to docs/screenshots/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const binary = process.env.MEETLINE_BIN || join(root, 'target', 'debug', 'meetline');
const shots = join(root, 'docs', 'screenshots');
const NO_FREE_LINE = '找不到空闲线路，请检查线路维护是否正常，或者重新选择会议时间';

async function startServer() {
  const data = mkdtempSync(join(tmpdir(), 'meetline-web-'));
  const child = spawn(binary, ['serve', '--demo', '--addr', '127.0.0.1:0', '--data', data], {
    env: { ...process.env, MEETLINE_LOG: 'warn', DATABASE_URL: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('meetline did not start')), 30000);
    lines.on('line', (line) => {
      const match = line.match(/meetline listening on (http:\/\/\S+)/);
      if (match) { clearTimeout(timer); resolve(match[1]); }
    });
    child.on('exit', (code) => reject(new Error(`meetline exited with ${code}`)));
  });
  return { base, stop: () => { child.kill(); rmSync(data, { recursive: true, force: true }); } };
}

/** Tomorrow's date in Asia/Shanghai (the demo users' time zone), as YYYY-MM-DD. */
function tomorrowInShanghai() {
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit' })
    .format(new Date(Date.now() + 86400000));
}

const viewports = [
  { name: 'pc', width: 1366, height: 768 },
  { name: 'mobile', width: 390, height: 844 },
];

for (const viewport of viewports) {
  test(`the app at ${viewport.name} size (${viewport.width}×${viewport.height})`, async () => {
    const server = await startServer();
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
    });
    mkdirSync(shots, { recursive: true });
    const shot = (page, name) => page.screenshot({ path: join(shots, `${viewport.name}-${name}.png`), fullPage: false });
    try {
      const context = await browser.newContext({ viewport, locale: 'zh-CN', isMobile: viewport.name === 'mobile' });
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
      const page = await context.newPage();
      const errors = [];
      // Chromium logs every non-2xx fetch; the 409s this test provokes on purpose (filling a slot,
      // editing into it) and the one 422 it announces (`provoked`) are answers the app shows, not
      // errors. Anything else counts.
      const provoked = { 422: 0 };
      page.on('console', (message) => {
        if (message.type() !== 'error' || /status of 409 \(Conflict\)/.test(message.text())) return;
        if (/status of 422 /.test(message.text()) && provoked[422] > 0) { provoked[422] -= 1; return; }
        errors.push(message.text());
      });
      page.on('pageerror', (error) => errors.push(String(error)));

      // Sign in by picking a demo user.
      await page.goto(`${server.base}/`);
      await page.waitForURL('**/signin');
      await shot(page, 'signin');
      await page.getByRole('button', { name: /张伟/ }).click();
      await page.waitForURL('**/app');
      await page.locator('li.row-item').first().waitFor();
      await shot(page, 'recent');

      // A quick conference: only a subject; afterwards "enter now" or "invite colleagues".
      await page.getByRole('button', { name: '快速会议' }).click();
      const quick = page.locator('#quick-form');
      await quick.getByLabel('会议名称').fill('快速同步');
      await quick.getByRole('button', { name: '开始会议' }).click();
      const started = page.locator('#started-dialog');
      await started.waitFor();
      assert.match(await page.locator('#started-enter').getAttribute('href'), /^https:\/\/meet\.jit\.si\/ml[0-9a-f]+\?jwt=/);
      await shot(page, 'quick');
      await started.getByRole('button', { name: '关闭' }).click();
      await page.locator('li.row-item', { hasText: '快速同步' }).waitFor();

      // A scheduled conference, tomorrow 09:00–10:00 (Asia/Shanghai).
      const day = tomorrowInShanghai();
      await page.getByRole('button', { name: '预订会议' }).click();
      const schedule = page.locator('#schedule-form');
      await schedule.getByLabel('会议名称').fill('方案评审');
      await schedule.getByLabel('日期', { exact: true }).fill(day);
      await schedule.getByLabel('开始时间').fill('09:00');
      await schedule.getByLabel('结束时间').fill('10:00');
      // Attendees are found by typing: pinyin initials find 王芳 (wf).
      await schedule.getByRole('combobox', { name: /拼音/ }).fill('wf');
      await schedule.getByRole('option', { name: /王芳/ }).click();
      await schedule.locator('.chip', { hasText: '王芳' }).waitFor();
      await shot(page, 'schedule');
      await schedule.getByRole('button', { name: '保存' }).click();
      const review = page.locator('li.row-item', { hasText: '方案评审' });
      await review.waitFor();
      assert.match(await review.textContent(), /未开始/);

      // Its details, and copying its attendee link.
      await review.getByRole('button', { name: '查看 方案评审' }).click();
      const detail = page.locator('#detail-dialog');
      await detail.waitFor();
      await detail.getByRole('button', { name: '复制链接: 参会人链接' }).click();
      const copied = await page.evaluate(() => navigator.clipboard.readText());
      assert.match(copied, /^https:\/\/meet\.jit\.si\/ml[0-9a-f]+\?jwt=/);
      await shot(page, 'detail');
      await detail.getByRole('button', { name: '关闭' }).click();

      // Make 14:00–15:00 tomorrow busy on every line, then edit into it: the seed's error, next to the form.
      await page.evaluate(async ({ day }) => {
        for (let i = 0; i < 6; i++) {
          await fetch('/api/v1/conferences', { method: 'POST', headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ subject: `占用 ${i}`, start: `${day}T06:00:00Z`, end: `${day}T07:00:00Z` }) });
        }
      }, { day });
      await review.getByRole('button', { name: '编辑 方案评审' }).click();
      await schedule.getByLabel('开始时间').fill('14:00');
      await schedule.getByLabel('结束时间').fill('15:00');
      await schedule.getByRole('button', { name: '保存' }).click();
      await schedule.locator('.form-error', { hasText: NO_FREE_LINE }).waitFor();
      // Under the seed's message, the nearest free times: 13:00–14:00 (this conference's own
      // booking does not count) is as near as 15:00–16:00, and earlier.
      const choices = schedule.locator('#s-suggestions button.choice');
      await choices.first().waitFor();
      assert.equal(await choices.count(), 3);
      assert.match(await choices.first().textContent(), /13:00–14:00$/);
      await shot(page, 'busy');
      await choices.first().click();
      await page.locator('#notice', { hasText: '已保存' }).waitFor();
      // (the notice comes first, the list is read again after it)
      await page.locator('li.row-item', { hasText: '方案评审' }).filter({ hasText: '13:00' }).waitFor();

      // Invite a colleague.
      await review.getByRole('button', { name: '邀请 方案评审' }).click();
      const invite = page.locator('#invite-form');
      await invite.getByRole('combobox', { name: /拼音/ }).fill('ln');
      await invite.getByRole('option', { name: /李娜/ }).waitFor();
      await shot(page, 'picker');
      await invite.getByRole('option', { name: /李娜/ }).click();
      // Those already in the conference are not offered again: 王芳 (an attendee) is not found.
      await invite.getByRole('combobox', { name: /拼音/ }).fill('wangfang');
      await invite.locator('.options li.none').waitFor();
      await invite.getByRole('combobox', { name: /拼音/ }).fill('');
      await invite.getByRole('button', { name: '邀请', exact: true }).click();
      await page.locator('#notice', { hasText: '已邀请' }).waitFor();

      // Cancel it (after confirming): it leaves 近期会议 and shows 已取消 in 全部会议.
      page.once('dialog', (dialog) => dialog.accept());
      await review.getByRole('button', { name: '取消 方案评审' }).click();
      await page.locator('#notice', { hasText: '会议已取消' }).waitFor();
      await page.locator('li.row-item', { hasText: '方案评审' }).waitFor({ state: 'detached' });

      // A weekly series: four Thursdays (or whatever weekday the day after tomorrow is), one
      // command; each occurrence is a conference of its own, marked 周期.
      await page.getByRole('button', { name: '预订会议' }).click();
      const later = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit' })
        .format(new Date(Date.now() + 2 * 86400000));
      await schedule.getByLabel('会议名称').fill('每周站会');
      await schedule.getByLabel('日期', { exact: true }).fill(later);
      await schedule.getByLabel('开始时间').fill('16:00');
      await schedule.getByLabel('结束时间').fill('17:00');
      await schedule.getByLabel('重复').selectOption('weekly');
      await schedule.getByLabel('次数').fill('4');
      await schedule.getByRole('combobox', { name: /拼音/ }).fill('zhou');
      await schedule.getByRole('option', { name: /Emma Zhou/ }).click();
      await shot(page, 'series');
      await schedule.getByRole('button', { name: '保存' }).click();
      await page.locator('#notice', { hasText: '已预订 4 场周期会议' }).waitFor();
      const weekly = page.locator('li.row-item', { hasText: '每周站会' });
      await weekly.nth(3).waitFor();
      assert.equal(await weekly.locator('.badge.series').count(), 4);
      // Its details say how it repeats.
      await weekly.first().getByRole('button', { name: '查看 每周站会' }).click();
      await detail.locator('dd', { hasText: '每 1 周' }).waitFor();
      await detail.getByRole('button', { name: '关闭' }).click();
      // A new subject for all of them: only the subject is sent, each keeps its own time.
      await weekly.first().getByRole('button', { name: '编辑 每周站会' }).click();
      await schedule.getByLabel('全部未开始的场次').check();
      await schedule.getByLabel('会议名称').fill('每周站会·产品');
      await schedule.getByRole('button', { name: '保存' }).click();
      await page.locator('#notice', { hasText: '已保存 4 场' }).waitFor();
      await page.waitForFunction(() => [...document.querySelectorAll('li.row-item h3')].filter((h) => h.textContent === '每周站会·产品').length === 4);
      // Cancel the second and the later ones: the first stays.
      await weekly.nth(1).getByRole('button', { name: '取消 每周站会' }).click();
      const scope = page.locator('#scope-form');
      await scope.getByLabel('此场及以后各场').check();
      await shot(page, 'series-cancel');
      await scope.getByRole('button', { name: '确定' }).click();
      await page.locator('#notice', { hasText: '已取消 3 场' }).waitFor();
      await page.waitForFunction(() => [...document.querySelectorAll('li.row-item')].filter((row) => row.textContent.includes('每周站会')).length === 1);

      // End the quick conference early (after confirming): 手动结束.
      page.once('dialog', (dialog) => dialog.accept());
      await page.locator('li.row-item', { hasText: '快速同步' }).getByRole('button', { name: '提前结束 快速同步' }).click();
      await page.locator('#notice', { hasText: '会议已提前结束' }).waitFor();
      await page.getByRole('tab', { name: '全部会议' }).click();
      await page.locator('li.row-item', { hasText: '快速同步' }).locator('.badge', { hasText: '手动结束' }).waitFor();
      await page.locator('li.row-item', { hasText: '方案评审' }).locator('.badge', { hasText: '已取消' }).waitFor();
      await shot(page, 'all');

      // English, and back.
      await page.getByRole('button', { name: 'English' }).click();
      await page.getByRole('tab', { name: 'All' }).waitFor();
      await page.locator('.badge', { hasText: 'Ended early' }).first().waitFor();
      await page.getByRole('button', { name: '中文' }).click();
      await page.getByRole('tab', { name: '全部会议' }).waitFor();

      // A group chat: tick two members, start a video call with them.
      await page.getByRole('link', { name: '聊天', exact: true }).click();
      await page.getByRole('button', { name: /产品研发群/ }).click();
      const chat = page.locator('#chat-form');
      await chat.getByRole('combobox', { name: /拼音/ }).fill('李');
      await chat.getByRole('option', { name: /李娜/ }).click();
      await chat.getByRole('combobox', { name: /拼音/ }).fill('wang');
      await chat.getByRole('option', { name: /王芳/ }).click();
      await shot(page, 'chat');
      await chat.getByRole('button', { name: '视频会议' }).click();
      await page.locator('#started-dialog').waitFor();
      await page.locator('#started-dialog').getByRole('button', { name: '关闭' }).click();
      // The read models follow the command within moments: poll rather than race them.
      const attendees = await page.evaluate(async () => {
        for (let attempt = 0; attempt < 50; attempt++) {
          const recent = await (await fetch('/api/v1/conferences/recent')).json();
          const found = recent.items.find((c) => c.source.type === 'chat' && c.source.id === 'product');
          if (found) return found.attendees;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        return null;
      });
      assert.deepEqual(attendees?.sort(), ['lina', 'wangfang']);

      const signInAs = async (person) => {
        await page.getByRole('button', { name: '退出' }).click();
        await page.waitForURL('**/signin');
        await page.getByRole('button', { name: new RegExp(person) }).click();
        await page.waitForURL('**/app');
      };

      // A meeting's card: a plain attendee sees no launch button…
      await signInAs('Frank Wu');
      await page.getByRole('link', { name: '会议', exact: true }).click();
      const kickoff = page.locator('li.row-item', { hasText: 'Project kickoff' });
      await kickoff.waitFor();
      assert.equal(await kickoff.getByRole('button', { name: /发起视频会议/ }).count(), 0);
      assert.match(await kickoff.textContent(), /只有会议的创建人、召集人、联系人可以发起视频会议/);
      // …its contact launches it and sees the links.
      await signInAs('Emma Zhou');
      await page.getByRole('link', { name: '会议', exact: true }).click();
      await kickoff.getByRole('button', { name: '发起视频会议 Project kickoff' }).click();
      await kickoff.locator('.link-row', { hasText: '参会人链接' }).waitFor();
      await shot(page, 'meeting');

      // The operators' dashboard shows today's conferences on the line timeline.
      await signInAs('管理员');
      await page.getByRole('link', { name: '运维看板' }).click();
      await page.locator('#ops-timeline svg g.bar[data-subject="快速同步"]').waitFor();
      await page.locator('#ops-timeline svg g.bar[data-subject="产品研发群"]').waitFor();
      await shot(page, 'ops');

      // Line maintenance: an admin adds a Tencent Meeting line; a missing secret is named at its
      // field, the secret is typed into a password field, and the new line can go into maintenance.
      await page.locator('#line-name').fill('腾讯会议 3');
      await page.locator('#line-provider').selectOption('tencent');
      assert.equal(await page.locator('#line-setting-secret_key').getAttribute('type'), 'password');
      await page.locator('#line-setting-app_id').fill('200000001');
      await page.locator('#line-setting-secret_id').fill('AKIDexample');
      await page.locator('#line-setting-user_id').fill('host@acme');
      provoked[422] += 1;
      await page.getByRole('button', { name: '添加线路' }).click();
      await page.locator('[data-error-for="settings.secret_key"]', { hasText: 'settings.secret_key' }).waitFor();
      assert.equal(await page.locator('#line-setting-secret_key').getAttribute('aria-invalid'), 'true');
      await page.locator('#line-setting-secret_key').fill('tencent-secret');
      await page.getByRole('button', { name: '添加线路' }).click();
      const tencentLine = page.locator('#ops-lines li.row-item', { hasText: '腾讯会议 3' });
      await tencentLine.waitFor();
      assert.match(await tencentLine.locator('.meta').textContent(), /腾讯会议/);
      assert.equal(await page.locator('#line-setting-secret_key').count(), 0, 'the form is reset to the builtin provider');
      await tencentLine.getByRole('button', { name: '进入维护 腾讯会议 3' }).click();
      await tencentLine.locator('.badge', { hasText: '维护中' }).waitFor();
      await page.locator('#line-form').scrollIntoViewIfNeeded();
      await shot(page, 'lines');

      assert.deepEqual(errors, [], 'no console errors');
      await context.close();
    } finally {
      await browser.close();
      server.stop();
    }
  });
}
