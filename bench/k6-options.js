// Options the HTTP load scripts share: VUS clients for DURATION, medians and tails in the
// summary, and thresholds (no failed request, every check passed, p99 under `p99Ms`).
//
// k6 shares the two cores with the service and PostgreSQL, and every request's metric samples
// carry its system tags: by default a dozen (the URL among them, different for every pull), one
// tag set to build and index per sample. Only `status` is kept: the summary and thresholds use
// none of the others. A/B of one build (docs/benchmarks.md, session 36): one-change pushes +11 %,
// debits +24 %, ahead in each of three rounds.
import http from 'k6/http';
import { check } from 'k6';

export function loadOptions(p99Ms) {
  return {
    vus: parseInt(__ENV.VUS || '1'),
    duration: __ENV.DURATION || '10s',
    summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
    systemTags: ['status'],
    thresholds: { http_req_failed: ['rate<0.001'], checks: ['rate>0.999'], http_req_duration: [`p(99)<${p99Ms}`] },
  };
}

// The lean load (the default; docs/benchmarks.md, session 39): every answer but a 200 counts as
// a failed request, decided by k6 itself (`http_req_failed`, whose threshold above allows none
// in a thousand) instead of a JavaScript check per request, and the scripts build each
// request's options and body once where they can. The `checks` threshold then only judges the
// scripts that still check content (sync-pull.js); with no check samples it passes. K6_LEAN=0 puts back the per-request JavaScript (checks, options, bodies),
// for an A/B of the load generator: the requests sent are the same bytes either way.
export const lean = __ENV.K6_LEAN !== '0';
if (lean) {
  http.setResponseCallback(http.expectedStatuses(200));
}

/** A 200, checked in JavaScript under K6_LEAN=0 (the lean load has k6 count it). */
export function expectOK(response) {
  if (!lean) {
    check(response, { 'status 200': (r) => r.status === 200 });
  }
}
