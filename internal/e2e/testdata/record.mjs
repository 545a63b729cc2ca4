// record.mjs is drive.mjs (testdata/browser) plus what the grading service
// test needs: it keeps every response whose URL contains input.capture
// (status, headers with Set-Cookie, body), so the test can search all of
// them for secrets, and it has a waitURL step for a page that leaves by
// itself (the sandbox's launch page submits its form on load).
//
// Input: {"steps": [...], "timeoutMs": N, "capture": "/services/ltigrade/"}
// Steps, one key each (plus "value" for fill):
//   {"goto": URL}            load URL, wait for its load event
//   {"open": URL}            load URL, wait only until it commits (a page that submits itself)
//   {"waitURL": TEXT}        wait until the page's URL contains TEXT and it has loaded
//   {"click": SELECTOR}      click it
//   {"fill": SELECTOR, "value": V}
//   {"wait": SELECTOR}       wait until it is visible
//   {"text": SELECTOR}       append its innerText to texts
//   {"html": SELECTOR}       append its outerHTML to texts
//   {"screenshot": NAME}     full-page PNG NAME(.png) in the artifacts folder
// Output, one JSON line: {"url", "texts", "screenshots", "responses", "ms" (each step's
// duration, for the log), "error", "step"}.
import fs from 'node:fs';

const { launchContext, artifact } = await import(process.env.LTIGRADE_BROWSER_LAUNCH);

const req = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = { url: '', texts: [], screenshots: [], responses: [], ms: [] };
const pending = [];
let context;
let page;
let i = -1;
try {
	({ context, page } = await launchContext());
	page.setDefaultTimeout(req.timeoutMs || 15000);
	if (req.capture) {
		context.on('response', (resp) => {
			if (!resp.url().includes(req.capture)) return;
			pending.push(
				(async () => {
					const r = { url: resp.url(), status: resp.status(), headers: await resp.allHeaders().catch(() => ({})), body: '' };
					// Redirects have no body in Chromium; say so rather than guess.
					try {
						r.body = (await resp.body()).toString('utf8');
					} catch (err) {
						r.body_error = String(err && err.message ? err.message : err);
					}
					out.responses.push(r);
				})(),
			);
		});
	}
	for (i = 0; i < req.steps.length; i++) {
		const s = req.steps[i];
		const began = Date.now();
		if (s.goto !== undefined) {
			await page.goto(s.goto);
		} else if (s.open !== undefined) {
			await page.goto(s.open, { waitUntil: 'commit' });
		} else if (s.waitURL !== undefined) {
			await page.waitForURL((u) => u.href.includes(s.waitURL), { waitUntil: 'load' });
		} else if (s.fill !== undefined) {
			await page.locator(s.fill).fill(s.value ?? '');
		} else if (s.click !== undefined) {
			await page.locator(s.click).click();
		} else if (s.wait !== undefined) {
			await page.locator(s.wait).waitFor({ state: 'visible' });
		} else if (s.text !== undefined) {
			out.texts.push(await page.locator(s.text).innerText());
		} else if (s.html !== undefined) {
			out.texts.push(await page.locator(s.html).evaluate((e) => e.outerHTML));
		} else if (s.screenshot !== undefined) {
			const name = s.screenshot.endsWith('.png') ? s.screenshot : `${s.screenshot}.png`;
			const file = artifact(name);
			await page.screenshot({ path: file, fullPage: true });
			out.screenshots.push(file);
		} else {
			throw new Error(`unknown step ${JSON.stringify(s)}`);
		}
		out.ms.push(Date.now() - began);
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
	await Promise.allSettled(pending);
	if (context) await context.close().catch(() => {});
}
process.stdout.write(JSON.stringify(out) + '\n');
