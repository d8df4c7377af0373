// trust.js: the CA fingerprint as people compare it, the instructions per
// system, and the set-up code's shape and waits.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  groupFingerprint,
  shortFingerprint,
  tlsModeWords,
  TRUST_STEPS,
  CA_FILE,
  normalizeSetupCode,
  setupCodeProblem,
  waitWords,
  SETUP_CODE_PLACEHOLDER,
  SETUP_CODE_CHARS,
} from '../../trust.js';

const HEX = '36cbfe10f33b2a7f843f145615a170a0d1143dd483d0b265a7537bde6edc50b5';

test('a fingerprint in upper-case pairs; anything but 64 hex digits is none', () => {
  assert.equal(
    groupFingerprint(HEX),
    '36:CB:FE:10:F3:3B:2A:7F:84:3F:14:56:15:A1:70:A0:D1:14:3D:D4:83:D0:B2:65:A7:53:7B:DE:6E:DC:50:B5',
  );
  assert.equal(groupFingerprint(groupFingerprint(HEX)), groupFingerprint(HEX), 'already grouped stays the same');
  for (const bad of [null, undefined, '', 'abc', HEX.slice(1), `${HEX}00`, HEX.replace('3', 'g')]) assert.equal(groupFingerprint(bad), null, String(bad));
});

test('the short form: the first groups and an ellipsis', () => {
  assert.equal(shortFingerprint(HEX), '36:CB:FE:10…');
  assert.equal(shortFingerprint(HEX, 2), '36:CB…');
  assert.equal(shortFingerprint(null), null);
});

test('TLS modes in words', () => {
  assert.match(tlsModeWords('auto'), /own CA/);
  assert.match(tlsModeWords('files'), /APP_TLS_CERT_FILE/);
  assert.match(tlsModeWords('off'), /not encrypted/);
  assert.equal(tlsModeWords('future'), 'future');
  assert.equal(tlsModeWords(null), 'unknown');
});

test('every system says how to trust the downloaded file', () => {
  assert.deepEqual(TRUST_STEPS.map((s) => s.os), ['Windows', 'macOS', 'Linux', 'iOS, iPadOS', 'Android']);
  const commands = TRUST_STEPS.flatMap((s) => s.commands).join('\n');
  assert.match(commands, /certutil -addstore -f ROOT rap-appliance-ca\.pem/);
  assert.match(commands, /security add-trusted-cert -d -r trustRoot -k \/Library\/Keychains\/System\.keychain/);
  assert.match(commands, /update-ca-certificates/);
  assert.match(commands, /certutil -d sql:\$HOME\/\.pki\/nssdb -A -t C,, /);
  assert.match(TRUST_STEPS[3].text, /Certificate Trust Settings/);
  for (const step of TRUST_STEPS) for (const command of step.commands) if (command.includes('.pem')) assert.ok(command.includes(CA_FILE), command);
});

test('set-up codes: case, spaces and dashes do not matter; the shape is checked before a try is spent', () => {
  assert.equal(normalizeSetupCode(' v0w6-y4hm z2fm-4J93-CYPR-YG89-5P1J \n'), 'V0W6Y4HMZ2FM4J93CYPRYG895P1J');
  assert.equal(normalizeSetupCode(SETUP_CODE_PLACEHOLDER).length, SETUP_CODE_CHARS);
  assert.equal(setupCodeProblem('V0W6-Y4HM-Z2FM-4J93-CYPR-YG89-5P1J'), '');
  assert.equal(setupCodeProblem('v0w6y4hmz2fm4j93cypryg895p1j'), '');
  assert.match(setupCodeProblem(''), /Enter the set-up code/);
  assert.match(setupCodeProblem('V0W6-Y4HM'), /28 letters and digits in 7 groups of 4; this has 8/);
  assert.match(setupCodeProblem('V0W6_Y4HM-Z2FM-4J93-CYPR-YG89-5P1J'), /only letters and digits/);
});

test('waits in words', () => {
  assert.equal(waitWords(1), '1 s');
  assert.equal(waitWords(0), '1 s');
  assert.equal(waitWords(89), '89 s');
  assert.equal(waitWords(90), '2 minutes');
  assert.equal(waitWords(897), '15 minutes');
});
