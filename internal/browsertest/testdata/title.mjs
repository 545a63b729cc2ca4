// title.mjs: node title.mjs INPUT.json prints the title of INPUT's url, as
// read by a browser started with launch.mjs (TestBrowserOwnScript).
import fs from 'node:fs';

const { launchContext } = await import(process.env.LTIGRADE_BROWSER_LAUNCH);
const { url } = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { context, page } = await launchContext();
try {
	await page.goto(url);
	console.log(await page.title());
} finally {
	await context.close();
}
