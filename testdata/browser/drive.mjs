// drive.mjs runs a JSON list of browser steps (testenv.Driver.Run) in one
// fresh Chromium and prints one JSON result line on stdout:
//
//   {"url": final URL, "texts": [...], "screenshots": [...], "error": "...", "step": N}
//
// Steps, one key each (plus "value" for fill):
//   {"goto": URL}                    load URL, wait for its load event
//   {"fill": SELECTOR, "value": V}   type V into the field
//   {"click": SELECTOR}              click it (a form submit waits for the new page to commit)
//   {"wait": SELECTOR}               wait until it is visible
//   {"waitText": TEXT}               wait until TEXT is visible anywhere on the page
//   {"text": SELECTOR}               append its innerText to texts
//   {"screenshot": NAME}             full-page PNG NAME(.png) in the artifacts folder
//
// Selectors are strict: one that matches two elements is an error, not a
// guess. On a failed step the page is screenshotted as failure-step-N.png.
import fs from 'node:fs';

const { launchContext, artifact } = await import(process.env.LTIGRADE_BROWSER_LAUNCH);

const req = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = { url: '', texts: [], screenshots: [] };
let context;
let page;
let i = -1;
try {
	({ context, page } = await launchContext());
	page.setDefaultTimeout(req.timeoutMs || 15000);
	for (i = 0; i < req.steps.length; i++) {
		const s = req.steps[i];
		if (s.goto !== undefined) {
			await page.goto(s.goto);
		} else if (s.fill !== undefined) {
			await page.locator(s.fill).fill(s.value ?? '');
		} else if (s.click !== undefined) {
			await page.locator(s.click).click();
		} else if (s.wait !== undefined) {
			await page.locator(s.wait).waitFor({ state: 'visible' });
		} else if (s.waitText !== undefined) {
			await page.getByText(s.waitText).first().waitFor({ state: 'visible' });
		} else if (s.text !== undefined) {
			out.texts.push(await page.locator(s.text).innerText());
		} else if (s.screenshot !== undefined) {
			const name = s.screenshot.endsWith('.png') ? s.screenshot : `${s.screenshot}.png`;
			const file = artifact(name);
			await page.screenshot({ path: file, fullPage: true });
			out.screenshots.push(file);
		} else {
			throw new Error(`unknown step ${JSON.stringify(s)}`);
		}
	}
	out.url = page.url();
} catch (err) {
	out.error = String(err && err.message ? err.message : err);
	out.step = i;
	if (page) {
		out.url = page.url();
		try {
			const file = artifact(`failure-step-${i}.png`);
			await page.screenshot({ path: file, fullPage: true, timeout: 5000 });
			out.screenshots.push(file);
		} catch {
			// The page may be gone; the error above is what matters.
		}
	}
	process.exitCode = 1;
} finally {
	if (context) await context.close().catch(() => {});
}
process.stdout.write(JSON.stringify(out) + '\n');
