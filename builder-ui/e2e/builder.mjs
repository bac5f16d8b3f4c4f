// Journey 1: an analyst builds a small app from scratch — an entity with 5 fields, a 3-state flow
// with a guard, a rule and a bar chart — publishing each after its migration report; then an end
// user enters records and sees the rule, the flow and the chart react. No JSON is typed anywhere.
import { api, BASE, settledDialog, cardMenu, choose, expect, newPage, PASSWORD, shot, signIn, token } from './lib.mjs';

async function publish(page) {
  await page.getByRole('button', { name: 'Publish', exact: true }).click();
  const report = page.getByTestId('migration-report');
  await report.waitFor();
  const text = await report.innerText();
  await (await settledDialog(page)).getByRole('button', { name: 'Publish now' }).click();
  // A publish migrates and re-checks the app; while the whole test suite loads both cores it has
  // taken longer than the default 20 s wait (a known flake), so it gets a minute.
  await page.getByText(/Published version \d+/).first().waitFor({ timeout: 60000 });
  return text;
}

/** Await `waiting`; if it fails on a record's page, say what the server stored for that record. */
async function withStoredRecord(page, admin, waiting) {
  try {
    await waiting;
  } catch (error) {
    const path = new URL(page.url()).pathname;
    const id = path.split('/').pop();
    const stored = id === 'new' ? 'none (the form is still open)'
      : await api('GET', `/api/apps/requests/entities/request/records/${id}`, admin).catch((e) => e.message);
    const bundle = await api('GET', '/api/apps/requests/bundle', admin).catch((e) => e.message);
    const entity = JSON.stringify(bundle?.['entities/request.schema.json'] ?? bundle);
    throw new Error(`${error.message}\non ${path}; the record as stored: ${JSON.stringify(stored)}\nthe entity as published: ${entity}`);
  }
}

async function fieldLabel(page, label) {
  await page.getByTestId('field-label-en').fill(label);
}

export async function builderJourney(browser) {
  const page = await newPage(browser, { reducedMotion: 'reduce' });
  await signIn(page, 'admin', PASSWORD);

  // A blank app.
  await page.getByRole('button', { name: 'Create blank app' }).click();
  // Less motion was asked for: the dialog is there at once, without antd's zoom.
  await page.locator('.ant-modal').first().waitFor();
  expect(await page.locator('.ant-modal.ant-zoom').count() === 0, 'a dialog opens without animation when less motion is asked for');
  const dialog = await settledDialog(page);
  await dialog.getByLabel('App id').fill('requests');
  await dialog.getByLabel('Name (English)').fill('Purchase requests');
  await dialog.getByLabel('Name (Chinese)').fill('采购申请');
  await dialog.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/apps\/requests\/design$/);

  // An entity with five fields, placed from the palette (one dragged, the others clicked).
  await page.getByTestId('new-entity').click();
  const newEntity = await settledDialog(page);
  await newEntity.getByLabel('Name (English)').fill('Request');
  await newEntity.getByLabel('Name (Chinese)').fill('申请');
  await newEntity.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/design\/entities\/request\?/);
  await page.getByTestId('palette-text').click();
  await fieldLabel(page, 'Title');
  await page.getByTestId('field-properties').getByRole('checkbox', { name: 'Required', exact: true }).check();
  await page.getByTestId('palette-decimal').click();
  await fieldLabel(page, 'Amount');
  await page.getByTestId('palette-single_select').click();
  await fieldLabel(page, 'Priority');
  await page.getByLabel('Value').first().fill('normal');
  await page.getByLabel('Option label (English)').first().fill('Normal');
  await page.getByRole('button', { name: 'Add option' }).click();
  await page.getByLabel('Value').nth(1).fill('high');
  await page.getByLabel('Option label (English)').nth(1).fill('High');
  await page.getByTestId('palette-date').dragTo(page.locator('[data-testid^="section-"]').first());
  await page.getByTestId('canvas-field-date_1').click();
  await fieldLabel(page, 'Needed by');
  await page.getByTestId('palette-user').click();
  await fieldLabel(page, 'Requester');
  // Big requests need a requester: a conditional requirement built visually.
  const requiredWhen = page.getByTestId('condition-requiredIf');
  await requiredWhen.getByRole('button', { name: 'Add condition' }).click();
  await choose(page, 'Field', 'Amount', requiredWhen);
  await choose(page, 'Operator', 'greater than', requiredWhen);
  await requiredWhen.getByLabel('Value').fill('5000');
  // The builder shows the rhai it wrote: the field, the comparison and the number, all three.
  await requiredWhen.locator('pre').filter({ hasText: /\b\w+ > 5000(\.0)?$/ }).waitFor();
  await page.locator('.ant-segmented').getByText('Preview', { exact: true }).click();
  // The live preview validates like the server: the title is required.
  await page.getByRole('button', { name: 'Check', exact: true }).click();
  await page.getByText('Required', { exact: true }).first().waitFor();
  await page.locator('.ant-segmented').getByText('Design', { exact: true }).click();
  await shot(page, 'entity-designer');
  const entityReport = await publish(page);
  expect(entityReport.includes('request'), `the migration report names the entity: ${entityReport}`);

  // A three-state flow: New → Review → Done, where only small requests finish without review.
  await page.goto(`${BASE}/apps/requests/design`);
  await page.getByTestId('new-flow').click();
  const newFlow = await settledDialog(page);
  await newFlow.getByLabel('Name (English)').fill('Approval');
  await choose(page, 'Entity', 'Request', newFlow);
  await newFlow.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/design\/flows\/approval\?/);
  await page.getByTestId('add-state').click();
  await page.getByTestId('state-label-en').fill('Review');
  await page.getByLabel('State id').fill('review');
  // The finish transition gets a guard written with the visual builder.
  await page.getByTestId('flow-canvas').getByText('Finish').click({ force: true });
  await page.getByTestId('transition-panel').waitFor();
  await page.getByRole('button', { name: 'Add condition' }).click();
  await choose(page, 'Field', 'Amount', page.getByTestId('condition-builder'));
  await choose(page, 'Operator', 'less than', page.getByTestId('condition-builder'));
  await page.getByTestId('condition-builder').getByLabel('Value').fill('1000');
  // New → Review, and Review → Done.
  await page.getByTestId('add-transition').click();
  await page.getByLabel('Event id').fill('send_to_review');
  await page.getByTestId('transition-panel').getByLabel('Button label (English)').fill('Send to review');
  await choose(page, 'To state', 'Review', page.getByTestId('transition-panel'));
  await page.getByTestId('add-transition').click();
  await page.getByLabel('Event id').fill('approve');
  await page.getByTestId('transition-panel').getByLabel('Button label (English)').fill('Approve');
  // From Review only: add Review, then take New away.
  await choose(page, 'From states', 'Review', page.getByTestId('transition-panel'));
  await page.keyboard.press('Escape');
  await choose(page, 'From states', 'New', page.getByTestId('transition-panel'));
  await page.keyboard.press('Escape');
  const from = await page.getByTestId('transition-panel').locator('.ant-select-selection-item').allInnerTexts();
  expect(from.join() === 'Review' || from.includes('Review') && !from.includes('New'), `approve leaves Review only: ${from}`);
  await choose(page, 'To state', 'Done', page.getByTestId('transition-panel'));
  // The server's findings are shown while designing: none once the flow is complete.
  await page.getByTestId('flow-findings').waitFor({ state: 'hidden' }); // a complete flow has no findings
  await shot(page, 'flow-designer');
  await publish(page);

  // A rule: requests over 500 become high priority.
  await page.goto(`${BASE}/apps/requests/design`);
  await page.getByTestId('new-rule').click();
  const newRule = await settledDialog(page);
  await newRule.getByLabel('Name (English)').fill('Big requests are urgent');
  await choose(page, 'Entity', 'Request', newRule);
  await newRule.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/design\/rules\//);
  await choose(page, 'Trigger', 'Before a record is saved');
  await page.getByRole('button', { name: 'Add condition' }).click();
  await choose(page, 'Field', 'Amount', page.getByTestId('condition-builder'));
  await choose(page, 'Operator', 'greater than', page.getByTestId('condition-builder'));
  await page.getByTestId('condition-builder').getByLabel('Value').fill('500');
  await choose(page, 'Add an action…', 'Set fields');
  await choose(page, 'Field', 'Priority', page.getByTestId('actions-editor'));
  await choose(page, 'Priority', 'High', page.getByTestId('actions-editor'));
  await shot(page, 'rule-builder');
  await publish(page);
  // What was published is the rule as built (should the end user's record miss its effect below,
  // this tells the designer's part from the server's).
  const admin = await token('admin', PASSWORD);
  const bundle = await api('GET', '/api/apps/requests/bundle', admin);
  const rule = JSON.stringify(Object.values(bundle).find((part) => JSON.stringify(part).includes('Big requests are urgent')) ?? null);
  expect(rule.includes('before_save') && rule.includes('500') && rule.toLowerCase().includes('high'), `the rule as published: ${rule}`);

  // A bar chart of requests by priority.
  await page.goto(`${BASE}/apps/requests/design`);
  await page.getByTestId('new-report').click();
  const newReport = await settledDialog(page);
  await newReport.getByLabel('Name (English)').fill('Requests by priority');
  await choose(page, 'Entity', 'Request', newReport);
  await newReport.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/design\/reports\//);
  await page.getByTestId('add-dimension').click();
  await choose(page, 'Group by', 'Priority', page.getByTestId('dimension-row'));
  await choose(page, 'Chart', 'Bar');
  await page.getByTestId('report-preview').waitFor();
  await publish(page);

  // An end user: the admin adds a person and gives them the member role.
  await page.getByRole('menuitem', { name: 'Members' }).click();
  await page.getByRole('button', { name: 'New person' }).click();
  const person = await settledDialog(page);
  await person.getByLabel('Username').fill('li.na');
  await person.getByLabel('Display name').fill('Li Na');
  await person.getByLabel('First password').fill('end-user-password-1');
  await person.getByLabel('E-mail').fill('li.na@example.cn');
  await choose(page, 'Language of notifications', '中文', person);
  await person.getByRole('button', { name: 'Create' }).click();
  await person.waitFor({ state: 'hidden' });
  await choose(page, 'Person', 'Li Na');
  await choose(page, 'Role', 'Member');
  await page.getByRole('button', { name: 'Give role' }).click();
  await page.locator('.ant-table-row').filter({ hasText: 'Li Na' }).waitFor();
  await shot(page, 'members');
  // Where and in which language Li Na is told things came back from the server.
  await page.locator('.ant-table-row').filter({ hasText: 'Li Na' }).getByRole('button', { name: 'Edit person' }).click();
  const edit = await settledDialog(page);
  await edit.getByLabel('E-mail').waitFor();
  expect(await edit.getByLabel('E-mail').inputValue() === 'li.na@example.cn', 'the e-mail address was saved');
  const language = await edit.locator('.ant-select').first().textContent();
  expect(language.includes('中文') && !language.includes('English'), `the language was saved (shown: ${language})`);
  await edit.getByRole('button', { name: 'Cancel' }).click();
  await edit.waitFor({ state: 'hidden' });
  const userPage = await newPage(browser, { reducedMotion: 'reduce' });
  await signIn(userPage, 'li.na', 'end-user-password-1');
  await userPage.getByTestId('app-card-requests').getByRole('button', { name: 'Open' }).click();
  // An end user sees the app, not its design.
  await userPage.getByRole('menuitem', { name: 'My tasks' }).waitFor();
  expect(await userPage.getByRole('menuitem', { name: 'Design' }).count() === 0, 'no Design entry for a member');
  await userPage.getByRole('menuitem', { name: 'Request' }).first().click();
  await userPage.getByRole('button', { name: 'New' }).click();
  // The form, not the list behind it (whose "Save view" button also says "Save"), must be showing.
  await userPage.getByRole('heading', { name: 'New Request' }).waitFor();
  // A missing title is refused beside the field.
  await userPage.getByRole('button', { name: 'Save', exact: true }).click();
  await userPage.getByText('Required').first().waitFor();
  await userPage.getByLabel('Title').fill('New laptops');
  await userPage.getByLabel('Amount').fill('800');
  await userPage.getByRole('button', { name: 'Save', exact: true }).click();
  await userPage.getByTestId('record-title').filter({ hasText: 'New laptops' }).waitFor();
  // The rule reacted: 800 > 500 made it high priority.
  await withStoredRecord(userPage, admin, userPage.getByText('High', { exact: true }).first().waitFor());
  // The flow reacts: Finish is refused (guard: amount under 1000 is fine, so it is allowed), the
  // request goes to review and is approved.
  const flow = userPage.getByTestId('flow-approval');
  await flow.getByTestId('flow-state').filter({ hasText: 'New' }).waitFor();
  await flow.getByRole('button', { name: 'Send to review' }).click();
  await flow.getByTestId('flow-state').filter({ hasText: 'Review' }).waitFor();
  expect(await flow.getByRole('button', { name: 'Finish' }).isDisabled(), 'Finish only leaves New');
  await flow.getByRole('button', { name: 'Approve' }).click();
  await flow.getByTestId('flow-state').filter({ hasText: 'Done' }).waitFor();
  await shot(userPage, 'end-user-record');
  // A big request cannot finish directly: the guard refuses and says why.
  await userPage.goto(`${BASE}/apps/requests/e/request/new`);
  await userPage.getByLabel('Title').fill('Server room');
  await userPage.getByLabel('Amount').fill('25000');
  // Over 5000 the requester becomes required, in the browser as on the server.
  await userPage.getByRole('button', { name: 'Save', exact: true }).click();
  await withStoredRecord(userPage, admin, userPage.getByText('Required').first().waitFor());
  await choose(userPage, 'Requester', 'Li Na');
  await userPage.getByRole('button', { name: 'Save', exact: true }).click();
  await userPage.getByTestId('record-title').filter({ hasText: 'Server room' }).waitFor();
  const finish = userPage.getByTestId('flow-approval').getByRole('button', { name: 'Finish' });
  await finish.waitFor();
  expect(await finish.isDisabled(), 'a 25000 request cannot finish without review');
  // The chart reacts: two high-priority requests.
  await userPage.goto(`${BASE}/apps/requests`);
  await userPage.getByRole('menuitem', { name: 'Reports' }).click();
  await userPage.getByRole('menuitem', { name: 'Requests by priority' }).click();
  await userPage.locator('canvas').first().waitFor();
  const table = await userPage.locator('.ant-table-row').allInnerTexts();
  expect(table.some((r) => r.includes('High') && r.includes('2')), `the chart's data shows 2 high requests: ${table}`);
  await shot(userPage, 'end-user-chart');

  // The analyst publishes the app to the gallery, where it can be installed like any template.
  await page.goto(`${BASE}/`);
  await cardMenu(page, 'requests', 'Publish to gallery');
  const publishing = await settledDialog(page);
  await publishing.getByLabel('Version').fill('1.0.0');
  await publishing.getByRole('button', { name: 'Publish to gallery' }).click();
  await page.getByText('Published to the gallery').first().waitFor();
  await page.getByRole('tab', { name: 'Template gallery' }).click();
  await page.getByTestId('template-requests').waitFor();

  // Another team installs it from the gallery…
  await page.getByTestId('template-requests').getByRole('button', { name: 'Install' }).click();
  const installing = await settledDialog(page);
  await installing.getByLabel('App id').fill('requests_east');
  await installing.getByRole('button', { name: 'Install' }).click();
  await page.getByTestId('app-card-requests_east').waitFor();
  // …the analyst publishes 1.1.0 (a new field), and the installed copy upgrades after a preview.
  await page.goto(`${BASE}/apps/requests/design/entities/request`);
  await page.getByTestId('palette-email').click();
  await fieldLabel(page, 'Contact email');
  await publish(page);
  await page.goto(`${BASE}/`);
  await cardMenu(page, 'requests', 'Publish to gallery');
  const publishingAgain = await settledDialog(page);
  await publishingAgain.getByLabel('Version').fill('1.1.0');
  await publishingAgain.getByRole('button', { name: 'Publish to gallery' }).click();
  await page.getByText('Published to the gallery').first().waitFor();
  await cardMenu(page, 'requests_east', 'Upgrade');
  const preview = await settledDialog(page);
  await preview.getByText(/From 1\.0\.0 to 1\.1\.0: [1-9]\d* template changes/).waitFor();
  await shot(page, 'upgrade-preview');
  await preview.getByRole('button', { name: 'Upgrade now' }).click();
  await page.getByText('Upgraded').first().waitFor();
  await page.getByTestId('app-card-requests_east').getByText('v1.1.0').waitFor();
  expect(page.errors.length === 0 && userPage.errors.length === 0, `no page errors: ${page.errors} ${userPage.errors}`);
}
