// Generates several Allure 3 reports in one Node process (rehearsal.report, the report in parts).
// Loading Allure costs ~1.4 CPU-s per process; a region has a part per site, so the parts
// share one process per core instead of one each. Same steps as `allure generate`.
//
//   node allure_parts.mjs <@allurereport/core/dist/index.js> <jobs.json>
//   jobs.json: [{"part": id, "cwd": folder, "config": allurerc.mjs, "output": folder, "results": folder}, …]
// Prints one line per part done ({"done": id, "seconds": s}); on a failure names the part, exit 1.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [core, jobsFile] = process.argv.slice(2);
const { AllureReport, readConfig } = await import(pathToFileURL(core).href);
const jobs = JSON.parse(readFileSync(jobsFile, "utf8"));
for (const job of jobs) {
  const started = performance.now();
  try {
    const config = await readConfig(job.cwd, job.config, { output: job.output });
    const report = new AllureReport(config);
    await report.start();
    await report.readDirectory(job.results);
    await report.done();
  } catch (error) {
    console.error(`${job.part}: ${error?.message ?? error}`);
    process.exit(1);
  }
  console.log(JSON.stringify({ done: job.part, seconds: (performance.now() - started) / 1000 }));
}
