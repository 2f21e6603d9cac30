// OpenWhisk-style action: GET /fn/ow-sum/?a=1&b=2
function main(params) {
  const a = Number(params.a ?? 0);
  const b = Number(params.b ?? 0);
  return { sum: a + b };
}
module.exports.main = main;
