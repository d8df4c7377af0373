// @ts-check
// First run (`#/setup`): the owner account, and the proof the appliance
// asks for before it hands over a fresh installation (`bootstrap_method`):
// the one-time set-up code from its data directory (legacy mode), a signed
// activation (strict mode), or nothing (the insecure test switch).

import * as api from './api.js';
import { h, setChildren, buildForm, toast } from './ui.js';
import { currentRoute, go } from './nav.js';
import { state } from './session.js';
import { SETUP_CODE_DEFAULT_PATH, SETUP_CODE_PLACEHOLDER, setupCodeProblem } from './trust.js';
import { tlsFacts } from './trust-view.js';

/** @typedef {'activation' | 'setup_code' | 'none'} BootstrapMethod */

/**
 * What creating the owner needs; an appliance from before
 * `bootstrap_method` asked for an activation in strict mode only.
 * @param {import('./session.js').Installation} installation
 * @returns {BootstrapMethod}
 */
function methodOf(installation) {
  const method = installation.bootstrap_method;
  if (method === 'activation' || method === 'setup_code' || method === 'none') return method;
  return installation.authority_mode === 'strict' ? 'activation' : 'none';
}

/** @param {HTMLElement} main */
export async function setupPage(main) {
  const installation = state.installation;
  const method = methodOf(installation);
  const activation = method === 'activation';
  const setupCode = method === 'setup_code';
  // The desktop app, which runs the appliance and so can read its data
  // directory, opens this page with the code (`#/setup?code=…`); it leaves
  // the address (and the history) as soon as it is read.
  const given = setupCode ? currentRoute().params.get('code') : null;
  if (given) history.replaceState(null, '', '#/setup');
  const form = buildForm({
    name: 'Create the owner account',
    submitLabel: 'Create owner',
    fields: [
      setupCode && {
        name: 'setup_code',
        label: 'Set-up code',
        required: true,
        autocomplete: 'off',
        value: given ?? '',
        placeholder: SETUP_CODE_PLACEHOLDER,
        hint: `28 letters and digits, from the file setup-code ($APP_DATA_DIR/setup-code, ${SETUP_CODE_DEFAULT_PATH} by default). Case, spaces and dashes do not matter.`,
      },
      { name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'username' },
      { name: 'display_name', label: 'Display name', required: true, autocomplete: 'name' },
      { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'new-password', minlength: 12, hint: 'At least 12 characters.' },
      { name: 'password_repeat', label: 'Repeat password', type: 'password', required: true, autocomplete: 'new-password' },
      activation && { name: 'manifest_b64', label: 'Activation manifest (base64)', type: 'textarea', required: true, rows: 3, hint: 'From your activation: manifest_b64. Pasting the whole activation JSON here fills both fields.' },
      activation && { name: 'signature_b64', label: 'Activation signature (base64)', type: 'textarea', required: true, rows: 2, hint: 'From your activation file: signature_b64.' },
    ],
    fieldFor: (path) => (path.startsWith('activation') ? (path.includes('signature') ? 'signature_b64' : 'manifest_b64') : path.split('.')[0]),
    submit: async (values) => {
      if (setupCode) {
        const problem = setupCodeProblem(values.setup_code);
        if (problem) throw localError(problem, { setup_code: 'not a set-up code' });
      }
      if (values.password !== values.password_repeat) {
        throw localError('The two passwords differ.', { password_repeat: 'does not match the password' });
      }
      const body = { email: values.email.trim(), password: values.password, display_name: values.display_name.trim() };
      if (activation) body.activation = { manifest_b64: values.manifest_b64.trim(), signature_b64: values.signature_b64.trim() };
      if (setupCode) body.setup_code = values.setup_code.trim();
      try {
        await api.api('POST', '/installation/bootstrap-owner', { auth: false, body });
      } catch (error) {
        throw refusalInWords(error);
      }
      state.installation = { ...installation, bootstrapped: true, bootstrap_method: null };
      await api.login(body.email, body.password, null);
      toast('Owner created. Welcome!');
      go('/');
    },
  });
  if (activation) acceptActivationJson(form);
  setChildren(
    main,
    h(
      'div',
      { class: 'narrow' },
      h('h1', { text: 'Set up this appliance' }),
      h('p', { text: 'Create the first owner account. It becomes the platform administrator and the owner of the default organization.' }),
      h(
        'dl',
        { class: 'facts' },
        h('dt', { text: 'Installation ID' }),
        h('dd', {}, h('code', { id: 'installation-id', text: installation.installation_id })),
        h('dt', { text: 'Authority mode' }),
        h('dd', { text: installation.authority_mode }),
        installation.tls ? tlsFacts(installation.tls, { download: true }) : null,
      ),
      activation ? h('p', { class: 'alert alert-info', text: 'This appliance runs in strict mode: paste the activation issued for this installation ID and owner email.' }) : null,
      setupCode && given
        ? h('p', { class: 'alert alert-info', id: 'setup-code-where' }, 'The desktop app filled in this appliance’s one-time set-up code. Choose the owner’s email and password.')
        : setupCode
        ? h('p', { class: 'alert alert-info', id: 'setup-code-where' }, 'To prove this appliance is yours, enter its one-time set-up code: it is in the file ', h('code', { text: 'setup-code' }), ' in the appliance’s data directory (', h('code', { text: SETUP_CODE_DEFAULT_PATH }), ' by default), also named in the appliance’s log when it starts. Only someone who can read that directory can create the owner.')
        : null,
      form,
    ),
  );
}

/**
 * The appliance's refusals of a set-up code, said so a person knows what
 * to do next (the envelope's code, key and reason stay for localisation).
 * @param {any} error
 */
function refusalInWords(error) {
  if (!(error instanceof api.ApiError)) return error;
  const reason = error.details?.reason;
  const say = (message, fields = {}) =>
    new api.ApiError(error.status, {
      error: { code: error.code, message_key: error.messageKey, fallback_message: message, details: { ...error.details, fields }, trace_id: error.traceId ?? undefined },
    });
  if (reason === 'setup_code_invalid') {
    return say('That set-up code is not right. Copy it again from the file setup-code; wrong tries are limited.', { setup_code: 'does not match the file setup-code' });
  }
  if (reason === 'setup_code_required') return say('Enter the set-up code from the file setup-code.', { setup_code: 'required' });
  // The error box adds when to try again.
  if (reason === 'setup_code_failures') return say('Too many wrong set-up codes: the appliance takes no more for now.');
  if (error.code === 'already_bootstrapped') return say('This appliance already has an owner: sign in instead.');
  return error;
}

/**
 * Accepts the activation JSON as the vendor's tool prints it.
 * @param {import('./ui.js').BuiltForm} form
 */
function acceptActivationJson(form) {
  const manifest = form.controls.get('manifest_b64');
  manifest.addEventListener('input', () => {
    const text = manifest.value.trim();
    if (!text.startsWith('{')) return;
    try {
      const activation = JSON.parse(text);
      const inner = activation.activation ?? activation;
      if (inner.manifest_b64 && inner.signature_b64) {
        manifest.value = inner.manifest_b64;
        form.controls.get('signature_b64').value = inner.signature_b64;
      }
    } catch {
      /* not (yet) complete JSON */
    }
  });
}

/**
 * An error of this page's own checks, shaped like the appliance's.
 * @param {string} message
 * @param {Record<string, string>} [fields]
 */
function localError(message, fields = {}) {
  return new api.ApiError(400, {
    error: { code: 'invalid_request', message_key: 'error.invalid_request', fallback_message: message, details: { fields } },
  });
}
