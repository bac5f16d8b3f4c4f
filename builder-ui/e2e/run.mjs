// Runs the browser journeys against a running Trellis (TRELLIS_URL, TRELLIS_PASSWORD of `admin`)
// in Debian's Chromium. TRELLIS_JOURNEYS picks some (`builder,clm`); TRELLIS_SCREENSHOTS saves the
// main screens there. Exits non-zero on the first failure, naming the journey.
import { launch, openPages } from './lib.mjs';
import { mkdirSync } from 'node:fs';
import { clmJourney } from './clm.mjs';
import { builderJourney } from './builder.mjs';

const journeys = { builder: builderJourney, clm: clmJourney };
const wanted = (process.env.TRELLIS_JOURNEYS ?? 'builder,clm').split(',').filter(Boolean);
const browser = await launch();
let failed = false;
for (const name of wanted) {
  const started = Date.now();
  try {
    await journeys[name](browser);
    console.log(`journey ${name}: ok (${Math.round((Date.now() - started) / 1000)} s)`);
  } catch (error) {
    failed = true;
    console.error(`journey ${name}: FAILED: ${error.stack ?? error}`);
    const dir = process.env.TRELLIS_FAILURES;
    if (dir) {
      mkdirSync(dir, { recursive: true });
      for (const [i, page] of openPages.entries()) {
        if (page.isClosed()) continue;
        console.error(`  page ${i}: ${page.url()}`);
        await page.screenshot({ path: `${dir}/${name}-${i}.png` }).catch(() => {});
      }
    }
  }
}
await browser.close();
process.exit(failed ? 1 : 0);
