// @ts-check
// Small DOM helpers shared by every page: an element builder, forms with
// per-field errors, modal dialogs, tables, error and notice rendering.
// Text always goes in as text (never as HTML).

import { ApiError } from './api.js';
import { waitWords } from './trust.js';

/**
 * What `h` and `setChildren` take as children: nodes, strings (as text),
 * numbers, arrays of these; null, undefined and false are skipped.
 * @typedef {Node | string | number | boolean | null | undefined | any[]} Child
 */

/**
 * Builds an element. `attrs`: `class`, `text`, `dataset`, `on<event>`
 * handlers, boolean and string attributes; `null`/`false` are skipped.
 * Children: nodes, strings, arrays, null.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') element.className = value;
    else if (key === 'text') element.textContent = value;
    else if (key === 'dataset') {
      for (const [name, data] of Object.entries(value)) if (data !== null && data !== undefined) element.dataset[name] = data;
    }
    else if (key.startsWith('on')) {
      // Handlers are functions; a string here would become code (an inline handler).
      if (typeof value === 'function') element.addEventListener(key.slice(2), value);
    }
    else if (key === 'value' || key === 'checked' || key === 'selected') element[key] = value;
    else element.setAttribute(key, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

/**
 * @param {Element} parent
 * @param {Child[]} children
 */
function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * Replaces the children of `element`.
 * @template {Element} E
 * @param {E} element
 * @param {...Child} children
 * @returns {E}
 */
export function setChildren(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

let idCounter = 0;
/**
 * An id unique in this page, for `for`, `aria-describedby` and the like.
 * @param {string} [prefix]
 */
export function uid(prefix = 'id') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

// ------------------------------------------------------------------ errors

/**
 * Turns anything thrown into the envelope's shape.
 * @param {any} error
 * @returns {ApiError}
 */
export function asApiError(error) {
  if (error instanceof ApiError) return error;
  return new ApiError(500, {
    error: {
      code: 'client_error',
      message_key: 'error.client_error',
      fallback_message: error?.message || 'Something went wrong in this page.',
      details: {},
    },
  });
}

/**
 * An alert paragraph for an error (an ApiError, or an `event` object of a
 * live-plane envelope): the fallback message as text, the message key kept
 * in `data-message-key` for localisation.
 * @param {any} error  an ApiError, an Error, or a live-plane `event`
 * @returns {HTMLParagraphElement}
 */
export function errorBox(error) {
  const isEvent = error && !(error instanceof Error) && 'fallback_message' in error;
  const code = isEvent ? error.code : asApiError(error).code;
  const key = isEvent ? error.message_key : asApiError(error).messageKey;
  const text = isEvent ? error.fallback_message : asApiError(error).message;
  const trace = isEvent ? error.trace_id : asApiError(error).traceId;
  const details = isEvent ? error.details : asApiError(error).details;
  const reason = details?.reason;
  // A rate limit says when it lifts (`retry_after_seconds`, as Retry-After).
  const retryAfter = code === 'rate_limited' ? Number(details?.retry_after_seconds) : NaN;
  return h(
    'p',
    { class: 'alert alert-error', role: 'alert', dataset: { messageKey: key ?? '', code: code ?? '', traceId: trace ?? '', reason: typeof reason === 'string' ? reason : null } },
    h('span', { text }),
    retryAfter > 0 ? h('span', { class: 'retry-after', text: ` Try again in ${waitWords(retryAfter)}.` }) : null,
    typeof reason === 'string' ? h('small', { class: 'reason', text: ` Reason: ${humanize(reason)}.` }) : null,
    trace ? h('small', { class: 'trace', text: ` (trace ${trace})` }) : null,
  );
}

/**
 * Shows `error` in `slot` (replacing what was there).
 * @param {Element} slot
 * @param {unknown} error
 */
export function showError(slot, error) {
  setChildren(slot, errorBox(error));
}

// ----------------------------------------------------------------- toasts

/**
 * A short status message in the page's live region.
 * @param {string} text
 * @param {'ok' | 'info' | 'warn'} [kind]
 */
export function toast(text, kind = 'ok') {
  const region = document.getElementById('toasts');
  if (!region) return;
  const item = h('p', { class: `toast toast-${kind}`, text });
  region.append(item);
  while (region.childElementCount > 3) region.firstElementChild.remove();
  setTimeout(() => item.remove(), 4_000);
}

// ------------------------------------------------------------------ format

/**
 * A timestamp in the reader's locale; '—' for none.
 * @param {string | number | Date | null | undefined} value
 */
export function formatTime(value) {
  if (!value) return '—';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/**
 * A `<time>` for a table cell, the exact value in its tooltip.
 * @param {string | null | undefined} value
 */
export function timeCell(value) {
  return value ? h('time', { datetime: value, title: value, text: formatTime(value) }) : '—';
}

/**
 * The last 8 characters of an id (enough to tell rows apart).
 * @param {string | null | undefined} id
 */
export function shortId(id) {
  return id ? String(id).slice(-8) : '—';
}

/**
 * A short id in `<code>`, the whole id in its tooltip.
 * @param {string | null | undefined} id
 */
export function idCell(id) {
  return id ? h('code', { title: id, class: 'id', text: shortId(id) }) : '—';
}

/**
 * A state badge; `kind` picks its colours (`badge-<kind>`).
 * @param {string} text
 * @param {string} [kind]
 */
export function badge(text, kind = text) {
  return h('span', { class: `badge badge-${String(kind).replace(/[^a-z0-9_-]/gi, '')}`, text });
}

/**
 * A snake_case code in words (`invalid_credentials` → `invalid credentials`).
 * @param {unknown} value
 */
export const humanize = (value) => String(value ?? '').replaceAll('_', ' ');

// ------------------------------------------------------------------- forms

/**
 * One field of `buildForm`.
 * @typedef {object} FieldSpec
 * @property {string} name
 * @property {string} label
 * @property {string} [type]  text (default), email, password, number, select, textarea, checkbox
 * @property {any} [value]
 * @property {boolean} [required]
 * @property {boolean} [readonly]
 * @property {string[][]} [options]  a select's `[value, label]` pairs
 * @property {string} [hint]
 * @property {string} [autocomplete]
 * @property {string} [placeholder]
 * @property {string} [inputmode]
 * @property {number} [min]
 * @property {number} [max]
 * @property {number} [minlength]
 * @property {number} [rows]
 */

/**
 * @typedef {object} FormSpec
 * @property {(FieldSpec | false | null | undefined)[]} fields  falsy entries are left out
 * @property {(values: Record<string, any>, form: BuiltForm) => unknown} submit
 * @property {string} [name]         the form's accessible name
 * @property {string} [title]        a dialog's heading (`formDialog`)
 * @property {string} [submitLabel]
 * @property {Node} [intro]
 * @property {Node} [extraButtons]
 * @property {string} [class]
 * @property {boolean} [novalidate]
 * @property {(path: string) => string} [fieldFor]  the field a `details.fields` path belongs to
 */

/**
 * A form from `buildForm`, with its controls by field name.
 * @typedef {HTMLFormElement & {controls: Map<string, HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>}} BuiltForm
 */

/**
 * Builds a form from field specs:
 * `{name, label, type?, value?, required?, options?: [[value, label]],
 *   hint?, autocomplete?, placeholder?, min?, max?, rows?}`.
 * `spec.submit(values, form)` is awaited on submit; a thrown ApiError is
 * shown above the buttons, and its `details.fields` next to each field.
 * @param {FormSpec} spec
 * @returns {BuiltForm}
 */
export function buildForm(spec) {
  const errorSlot = h('div', { class: 'form-error', 'aria-live': 'polite' });
  const controls = new Map();
  const fieldNodes = spec.fields.filter(/** @returns {field is FieldSpec} */ (field) => Boolean(field)).map((field) => {
    const id = uid(`f-${field.name}`);
    const hintId = field.hint ? `${id}-hint` : null;
    const errorId = `${id}-error`;
    let control;
    const common = {
      id,
      name: field.name,
      required: field.required,
      'aria-describedby': [hintId, errorId].filter(Boolean).join(' '),
      autocomplete: field.autocomplete,
      placeholder: field.placeholder,
      readonly: field.readonly,
    };
    if (field.type === 'select') {
      control = h(
        'select',
        common,
        field.options.map(([value, label]) => h('option', { value, selected: String(field.value ?? '') === String(value) }, label)),
      );
    } else if (field.type === 'textarea') {
      control = h('textarea', { ...common, rows: field.rows ?? 4, spellcheck: 'false' });
      control.value = field.value ?? '';
    } else if (field.type === 'checkbox') {
      control = h('input', { ...common, type: 'checkbox', checked: Boolean(field.value) });
    } else {
      control = h('input', {
        ...common,
        type: field.type ?? 'text',
        value: field.value ?? '',
        min: field.min,
        max: field.max,
        minlength: field.minlength,
        inputmode: field.inputmode,
        spellcheck: field.type === 'email' || field.type === 'password' ? 'false' : null,
      });
    }
    controls.set(field.name, control);
    const label = h('label', { for: id }, field.label, field.required ? h('span', { class: 'req', 'aria-hidden': 'true', text: ' *' }) : null);
    const hint = field.hint ? h('small', { id: hintId, class: 'hint', text: field.hint }) : null;
    const fieldError = h('small', { id: errorId, class: 'field-error' });
    const wrapper = h('div', { class: `field field-${field.type ?? 'text'}`, dataset: { field: field.name } });
    if (field.type === 'checkbox') append(wrapper, [h('div', { class: 'check' }, control, label), hint, fieldError]);
    else append(wrapper, [label, control, hint, fieldError]);
    return wrapper;
  });

  const submitButton = h('button', { type: 'submit', class: 'primary', text: spec.submitLabel ?? 'Save' });
  const buttons = h('div', { class: 'form-actions' }, submitButton, spec.extraButtons ?? null);
  const form = /** @type {BuiltForm} */ (h('form', { class: `form ${spec.class ?? ''}`, novalidate: spec.novalidate ?? false }, spec.intro ?? null, fieldNodes, errorSlot, buttons));
  if (spec.name) form.setAttribute('aria-label', spec.name);

  const clearErrors = () => {
    errorSlot.replaceChildren();
    for (const control of controls.values()) {
      control.removeAttribute('aria-invalid');
      const slot = document.getElementById(`${control.id}-error`);
      if (slot) slot.textContent = '';
    }
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (form.dataset.busy) return;
    clearErrors();
    const values = {};
    for (const [name, control] of controls) {
      values[name] = control.type === 'checkbox' ? control.checked : control.value;
    }
    form.dataset.busy = '1';
    submitButton.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      await spec.submit(values, form);
    } catch (error) {
      const apiError = asApiError(error);
      showError(errorSlot, apiError);
      let focused = false;
      for (const [path, reason] of Object.entries(apiError.fields)) {
        const name = spec.fieldFor?.(path) ?? path.split(/[.[]/)[0];
        const control = controls.get(name) ?? controls.get(path);
        if (!control) continue;
        control.setAttribute('aria-invalid', 'true');
        const slot = document.getElementById(`${control.id}-error`);
        if (slot) slot.textContent = `${path}: ${reason}`;
        if (!focused) {
          control.focus();
          focused = true;
        }
      }
    } finally {
      delete form.dataset.busy;
      submitButton.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });
  form.controls = controls;
  return form;
}

// ----------------------------------------------------------------- dialogs

/**
 * A modal dialog around a form. Resolves with what `spec.submit` returned,
 * or undefined when cancelled.
 * @param {FormSpec & {title: string}} spec
 * @returns {Promise<any>}
 */
export function formDialog(spec) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    let result;
    const cancel = h('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => dialog.close() });
    const form = buildForm({
      ...spec,
      extraButtons: cancel,
      submit: async (values, formElement) => {
        result = await spec.submit(values, formElement);
        dialog.close();
      },
    });
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId }, h('h2', { id: titleId, text: spec.title }), form);
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = /** @type {HTMLElement | null} */ (form.querySelector('input:not([type=hidden]), select, textarea'));
    first?.focus();
  });
}

/**
 * Asks a yes/no question in a modal dialog; resolves true on confirm.
 * @param {string} message
 * @param {string} [confirmLabel]
 * @param {boolean} [danger]  a red confirm button
 * @returns {Promise<boolean>}
 */
export function confirmDialog(message, confirmLabel = 'Confirm', danger = true) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    let confirmed = false;
    const yes = h('button', {
      type: 'button',
      class: danger ? 'danger' : 'primary',
      text: confirmLabel,
      onclick: () => {
        confirmed = true;
        dialog.close();
      },
    });
    const no = h('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => dialog.close() });
    const dialog = h(
      'dialog',
      { class: 'dialog', role: 'alertdialog', 'aria-labelledby': titleId },
      h('h2', { id: titleId, text: message }),
      h('div', { class: 'form-actions' }, yes, no),
    );
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(confirmed);
    });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}

// ------------------------------------------------------------------ tables

/**
 * A table: `columns` = `[{label, cell: (item) => node|string, class?}]`.
 * `caption` names it for assistive technology.
 * @template T  a row's item; its `id`, when it has one, goes into `data-id`
 * @param {string} caption
 * @param {{label: string, cell: (item: T) => Child, class?: string}[]} columns
 * @param {T[]} items
 * @param {string} [empty]  shown instead of an empty table
 */
export function table(caption, columns, items, empty = 'Nothing here yet.') {
  if (!items.length) return h('p', { class: 'empty', text: empty });
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      h('caption', { class: 'visually-hidden', text: caption }),
      h('thead', {}, h('tr', {}, columns.map((column) => h('th', { scope: 'col', class: column.class, text: column.label })))),
      h(
        'tbody',
        {},
        items.map((item) => {
          const { id } = /** @type {{id?: string}} */ (item);
          return h(
            'tr',
            { dataset: id ? { id } : {} },
            columns.map((column) => h('td', { class: column.class, dataset: { label: column.label } }, column.cell(item) ?? '—')),
          );
        }),
      ),
    ),
  );
}

/**
 * A small button for table rows. Its accessible name is its visible label;
 * `title` (what exactly it acts on) becomes its tooltip and description.
 * @param {string} label
 * @param {((event: MouseEvent) => unknown) | null} onclick
 * @param {{kind?: string, title?: string, disabled?: boolean}} [options]
 */
export function actionButton(label, onclick, { kind = 'secondary', title, disabled } = {}) {
  return h('button', { type: 'button', class: `small ${kind}`, text: label, title, onclick, disabled });
}

/**
 * A section with a heading and optional header actions.
 * @param {string} title
 * @param {Child} actions
 * @param {...Child} content
 */
export function section(title, actions, ...content) {
  const headingId = uid('sec');
  return h(
    'section',
    { class: 'panel', 'aria-labelledby': headingId },
    h('div', { class: 'panel-head' }, h('h2', { id: headingId, text: title }), h('div', { class: 'panel-actions' }, actions)),
    content,
  );
}

/**
 * Runs `load()` and shows its result in `slot` via `render(result)`;
 * shows a loading line meanwhile and the error box on failure.
 * @template T
 * @param {HTMLElement} slot
 * @param {() => Promise<T>} load
 * @param {(result: T) => Child} render
 */
export async function loadInto(slot, load, render) {
  slot.setAttribute('aria-busy', 'true');
  if (!slot.childElementCount) setChildren(slot, h('p', { class: 'muted', text: 'Loading…' }));
  try {
    const result = await load();
    setChildren(slot, render(result));
  } catch (error) {
    showError(slot, error);
  } finally {
    slot.removeAttribute('aria-busy');
  }
}
