// nav.js: hash routes into a path and query parameters.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRoute } from '../../nav.js';

test('an empty hash is the home route', () => {
  assert.equal(parseRoute('').path, '/');
  assert.equal(parseRoute('#').path, '/');
  assert.equal(parseRoute('#?x=1').path, '/');
});

test('the path and the parameters of a viewer route', () => {
  const route = parseRoute('#/viewer/0190f5c2-0000-7000-8000-000000000001?mode=shadow');
  assert.equal(route.path, '/viewer/0190f5c2-0000-7000-8000-000000000001');
  assert.equal(route.params.get('mode'), 'shadow');
});

test('admin filters come through as parameters', () => {
  const route = parseRoute('#/admin/audit?session_id=abc&limit=100');
  assert.equal(route.path, '/admin/audit');
  assert.equal(route.params.get('session_id'), 'abc');
  assert.equal(route.params.get('limit'), '100');
});
