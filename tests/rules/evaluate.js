// Evaluates database.rules.json cases with targaryen's API, for tests/rules/test_rules.py.
// stdin: {"rules": {...}, "data": {...}, "now": ms, "cases": [{"auth": null|{uid,...},
//   "op": "read"|"write"|"update", "path": "...", "value": any, "query": {...}}]}
// stdout: [{"allowed": bool, "info": "..."}], one per case, in order.
'use strict';

const targaryen = require('targaryen');

function evaluate(spec) {
  const database = targaryen.database(spec.rules, spec.data, spec.now);
  return spec.cases.map((c) => {
    const db = database.as(c.auth);
    let result;
    if (c.op === 'read') {
      result = db.read(c.path, {now: spec.now, query: c.query || {}});
    } else if (c.op === 'write') {
      result = db.write(c.path, c.value, {now: spec.now});
    } else if (c.op === 'update') {
      result = db.update(c.path, c.value, spec.now);
    } else {
      throw new Error('unknown op ' + c.op);
    }
    return {allowed: result.allowed, info: result.info};
  });
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify(evaluate(JSON.parse(input))));
});
