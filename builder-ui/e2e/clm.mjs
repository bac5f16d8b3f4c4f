// Journey 2, the CLM demo: dashboards with a drill-down to the records, the customer 360 page, a
// kanban move the server refuses with its reason, and the same app in Chinese on a phone.
import { api, BASE, choose, settledDialog, expect, newPage, PASSWORD, shot, signIn, token } from './lib.mjs';

export async function clmJourney(browser) {
  const page = await newPage(browser);
  await signIn(page, 'admin', PASSWORD);
  await shot(page, 'apps-home');
  await page.getByTestId('app-card-clm').getByRole('button', { name: 'Open' }).click();
  // The first dashboard, with every widget drawn.
  await page.getByTestId('widget-at_risk_customers').waitFor();
  await page.getByTestId('widget-health_tiers').locator('canvas').first().waitFor();
  await shot(page, 'dashboard');

  // Drill-down: a row of the at-risk list opens the customers behind it.
  const row = page.getByTestId('widget-at_risk_customers').locator('.ant-table-row').first();
  const name = (await row.locator('td').first().innerText()).trim();
  await row.click();
  await page.waitForURL(/\/apps\/clm\/e\/customer\?filter=/);
  // The drilled list shows the customer behind the row.
  await page.locator('.ant-table-row').filter({ hasText: name }).first().waitFor();
  await page.getByRole('button', { name: /Filter \(\d+\)/ }).waitFor(); // the drill-down filter shows in the filter builder

  // A saved view keeps the filter: save it, leave, come back, pick it.
  await page.getByRole('button', { name: 'Save view' }).click();
  const saveView = await settledDialog(page);
  await saveView.getByLabel('Name of this view').fill('At risk');
  await saveView.getByText('Share with everyone').click();
  await saveView.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('dialog').waitFor({ state: 'hidden' });
  await page.goto(`${BASE}/apps/clm/e/customer`);
  await page.locator('.ant-table-row').first().waitFor();
  await choose(page, 'Saved views', 'At risk');
  await page.getByRole('button', { name: /Filter \(\d+\)/ }).waitFor();
  await page.locator('.ant-table-row').filter({ hasText: name }).first().waitFor();

  // Customer 360: profile, scores with trend, loyalty, timeline, orders, flow.
  await page.locator('.ant-table-row').first().getByRole('link').first().click();
  await page.getByTestId('record-title').waitFor();
  expect((await page.getByTestId('record-title').innerText()).includes(name), 'the 360 page is the drilled customer');
  for (const section of ['profile', 'scores', 'loyalty']) await page.getByTestId(`section-${section}`).waitFor();
  await page.getByRole('tab', { name: 'Orders' }).click();
  await page.locator('[role=tabpanel]:visible .ant-table-row').first().waitFor();
  await page.getByTestId('flow-lifecycle').getByTestId('flow-state').waitFor();
  await shot(page, 'customer-360');

  // Kanban: dragging a lead whose grade is below 7 to MQL is refused with the guard's reason.
  const admin = await token('admin', PASSWORD);
  const newLeads = await api('GET', `/api/apps/clm/entities/lead/records?limit=50&filter=${encodeURIComponent(JSON.stringify({ field: 'status', op: 'eq', value: 'new' }))}`, admin);
  const weak = newLeads.items.find((r) => typeof r.data.grade === 'number' && r.data.grade < 7);
  expect(weak, 'the demo has a new lead graded below 7');
  await page.goto(`${BASE}/apps/clm/kanban/lead`);
  const card = page.locator(`[data-record-id="${weak.id}"]`);
  await card.waitFor();
  await card.dragTo(page.getByTestId('kanban-column-mql'));
  const refusal = page.getByTestId('kanban-refusal');
  await refusal.waitFor();
  const reason = await refusal.innerText();
  expect(reason.includes('grade >= 7'), `the refusal explains the guard: ${reason}`);
  await page.getByTestId('kanban-column-new').locator(`[data-record-id="${weak.id}"]`).waitFor();
  const after = await api('GET', `/api/apps/clm/entities/lead/records/${weak.id}`, admin);
  expect(after.data.status === 'new', 'the refused lead stays new');
  await shot(page, 'kanban-refused');
  // A move the flow allows goes through (keyboard path: "Move to…").
  const cold = newLeads.items.find((r) => r.id !== weak.id);
  await choose(page, 'Move to…', 'Cold', page.locator(`[data-record-id="${cold.id}"]`));
  await page.getByTestId('kanban-column-cold').locator(`[data-record-id="${cold.id}"]`).waitFor();

  // Import with a bad row: the good rows go in, the bad one is listed with its reason.
  await page.goto(`${BASE}/apps/clm/e/company`);
  await page.getByRole('button', { name: 'Import' }).click();
  const importing = await settledDialog(page);
  await importing.locator('input[type=file]').setInputFiles({
    name: 'companies.csv', mimeType: 'text/csv',
    buffer: Buffer.from('name,industry\nE2E Tea House,retail\nE2E Noodle Bar,retail\n,retail\n'),
  });
  const imported = page.getByTestId('import-result');
  await imported.waitFor();
  expect((await imported.innerText()).includes('2 inserted, 1 rejected'), `import counts: ${await imported.innerText()}`);
  await importing.locator('.ant-table-row').first().waitFor();
  await page.keyboard.press('Escape');
  await page.locator('.ant-table-row').filter({ hasText: 'E2E Tea House' }).first().waitFor();

  // Tasks inbox.
  await page.goto(`${BASE}/apps/clm/tasks`);
  await page.getByTestId('task-list').waitFor();
  await shot(page, 'tasks');
  expect(page.errors.length === 0, `no page errors: ${page.errors}`);

  // The same app in Chinese, on a phone-sized screen.
  const phone = await newPage(browser, { locale: 'zh-CN', width: 390, height: 844 });
  await signIn(phone, 'admin', PASSWORD, 'zh-CN');
  await phone.goto(`${BASE}/apps/clm`);
  await phone.getByRole('button', { name: '菜单' }).click();
  await phone.getByRole('menuitem', { name: '客户', exact: true }).click();
  await phone.getByRole('heading', { name: '客户' }).waitFor();
  await phone.getByRole('button', { name: /筛选/ }).waitFor();
  await shot(phone, 'customers-phone-zh');
  expect(phone.errors.length === 0, `no page errors on the phone: ${phone.errors}`);

  // Every screen in Chinese shows translations, never a missing key such as `design.publish`.
  const zh = await newPage(browser, { locale: 'zh-CN' });
  await signIn(zh, 'admin', PASSWORD, 'zh-CN');
  const customer = (await api('GET', '/api/apps/clm/entities/customer/records?limit=1', admin)).items[0].id;
  const screens = ['/', '/apps/clm/d/overview', `/apps/clm/e/customer/${customer}`, `/apps/clm/e/customer/${customer}/edit`,
    '/apps/clm/kanban/lifecycle', '/apps/clm/tasks', '/apps/clm/r/customers_by_stage', '/apps/clm/design',
    '/apps/clm/design/entities/customer', '/apps/clm/design/flows/lifecycle', '/apps/clm/design/rules/lead_mql',
    '/apps/clm/design/reports/customers_by_stage', '/apps/clm/design/dashboards/overview', '/apps/clm/members'];
  const key = /\b(common|field|filter|flow|form|gallery|home|kanban|list|login|nav|record|report|tasks|upgrade|validate|condition|dashboard|design|kinds|publish|rule|import|members)\.[a-zA-Z_]+/;
  for (const path of screens) {
    await zh.goto(`${BASE}${path}`);
    await zh.waitForLoadState('networkidle');
    await zh.waitForTimeout(300);
    const text = await zh.evaluate(() => document.body.innerText);
    const missing = text.match(key);
    expect(!missing, `${path} shows an untranslated key: ${missing?.[0]}`);
    expect(/[\u4e00-\u9fff]/.test(text), `${path} is in Chinese`);
  }
  await zh.goto(`${BASE}/apps/clm/design/entities/customer`);
  await zh.getByTestId('canvas-field-email').click();
  await zh.getByTestId('field-properties').waitFor();
  const properties = await zh.getByTestId('field-properties').innerText();
  expect(!key.test(properties) && properties.includes('字段标识'), `the property panel is translated: ${properties.slice(0, 200)}`);
  await shot(zh, 'entity-designer-zh');
  expect(zh.errors.length === 0, `no page errors in Chinese: ${zh.errors}`);
}
