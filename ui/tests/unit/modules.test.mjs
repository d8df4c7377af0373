// The shape of the UI's module graph (ui/README.md): app.js is the entry
// and nothing imports it; there are no import cycles; every module is
// type-checked; and nothing puts text into the page as HTML (values from
// the server go in with textContent or the element builder `h`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const UI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const modules = readdirSync(UI).filter((name) => name.endsWith('.js')).sort();
const source = Object.fromEntries(modules.map((name) => [name, readFileSync(path.join(UI, name), 'utf8')]));

/** The modules `name` imports (static `import … from './x.js'`, `export … from`, and `new URL('./x.js')` workers). */
function importsOf(name) {
  const found = new Set();
  for (const match of source[name].matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'\.\/([\w.-]+\.js)'/gm)) found.add(match[1]);
  for (const match of source[name].matchAll(/new URL\('\.\/([\w.-]+\.js)'/g)) found.add(match[1]);
  return [...found];
}

test('every module exists that another imports', () => {
  for (const name of modules) for (const target of importsOf(name)) assert.ok(modules.includes(target), `${name} imports ${target}`);
});

test('no module imports app.js, the entry point', () => {
  for (const name of modules) assert.ok(!importsOf(name).includes('app.js'), `${name} imports app.js`);
  assert.match(readFileSync(path.join(UI, 'index.html'), 'utf8'), /<script type="module" src="app\.js"><\/script>/);
});

test('the module graph has no cycles', () => {
  const state = new Map(); // name → 'visiting' | 'done'
  const visit = (name, trail) => {
    if (state.get(name) === 'done') return;
    assert.notEqual(state.get(name), 'visiting', `import cycle: ${[...trail, name].join(' → ')}`);
    state.set(name, 'visiting');
    for (const target of importsOf(name)) visit(target, [...trail, name]);
    state.set(name, 'done');
  };
  for (const name of modules) visit(name, []);
});

test('the viewer modules stay small: under 500 lines each', () => {
  for (const name of modules.filter((n) => n.startsWith('viewer'))) {
    const lines = source[name].split('\n').length;
    assert.ok(lines < 500, `${name}: ${lines} lines`);
  }
});

test('every module starts with // @ts-check', () => {
  for (const name of modules) assert.equal(source[name].split('\n')[0], '// @ts-check', name);
});

test('no module writes HTML into the page', () => {
  for (const name of modules) {
    for (const sink of ['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'createContextualFragment', 'DOMParser']) {
      assert.ok(!source[name].includes(sink), `${name} uses ${sink}`);
    }
  }
});
