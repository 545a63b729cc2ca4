// launch.mjs starts Debian's Chromium through playwright-core for the
// browser tests (internal/testenv/browser.go sets the environment):
//
//   PLAYWRIGHT_CORE          the installed playwright-core package folder
//   CHROMIUM                 the browser (playwright's own downloads are never used)
//   LTIGRADE_BROWSER_ARGS    JSON list of Chromium flags that work on a closed network
//   LTIGRADE_BROWSER_PROFILE a fresh, empty user-data-dir
//   LTIGRADE_BROWSER_NOJS    "1" to run the pages with JavaScript off
//   LTIGRADE_ARTIFACTS       where screenshots go
//
// A driver written by a test imports it the same way drive.mjs does:
//   const { launchContext, artifact } = await import(process.env.LTIGRADE_BROWSER_LAUNCH);
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

function env(name) {
	const v = process.env[name];
	if (!v) throw new Error(`launch.mjs: ${name} is not set (run it through testenv.Browser)`);
	return v;
}

// launchContext returns a persistent context on the fresh profile, so no
// cookie or cache survives from another run, and its first page.
export async function launchContext() {
	const { chromium } = require(env('PLAYWRIGHT_CORE'));
	const context = await chromium.launchPersistentContext(env('LTIGRADE_BROWSER_PROFILE'), {
		executablePath: env('CHROMIUM'),
		headless: true,
		args: JSON.parse(env('LTIGRADE_BROWSER_ARGS')),
		javaScriptEnabled: process.env.LTIGRADE_BROWSER_NOJS !== '1',
	});
	const page = context.pages()[0] || (await context.newPage());
	return { context, page };
}

// artifact is the path of a file NAME in the artifacts folder; NAME is
// checked so a step cannot write outside it.
export function artifact(name) {
	if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
		throw new Error(`artifact name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-'`);
	}
	return path.join(env('LTIGRADE_ARTIFACTS'), name);
}
