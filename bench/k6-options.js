// Options the HTTP load scripts share: VUS clients for DURATION, medians and tails in the
// summary, and thresholds (no failed request, every check passed, p99 under `p99Ms`).
//
// k6 shares the two cores with the service and PostgreSQL, and every request's metric samples
// carry its system tags: by default a dozen (the URL among them, different for every pull), one
// tag set to build and index per sample. Only `status` is kept: the summary and thresholds use
// none of the others. A/B of one build (docs/benchmarks.md, session 36): one-change pushes +11 %,
// debits +24 %, ahead in each of three rounds.
export function loadOptions(p99Ms) {
  return {
    vus: parseInt(__ENV.VUS || '1'),
    duration: __ENV.DURATION || '10s',
    summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
    systemTags: ['status'],
    thresholds: { http_req_failed: ['rate<0.001'], checks: ['rate>0.999'], http_req_duration: [`p(99)<${p99Ms}`] },
  };
}
