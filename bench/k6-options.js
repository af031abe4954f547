// Options the HTTP load scripts share: VUS clients for DURATION, medians and tails in the
// summary, and thresholds (no failed request, every check passed, p99 under `p99Ms`).
export function loadOptions(p99Ms) {
  return {
    vus: parseInt(__ENV.VUS || '1'),
    duration: __ENV.DURATION || '10s',
    summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
    thresholds: { http_req_failed: ['rate<0.001'], checks: ['rate>0.999'], http_req_duration: [`p(99)<${p99Ms}`] },
  };
}
