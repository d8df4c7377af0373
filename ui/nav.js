// @ts-check
// Hash routes: where the console is and how to move. The router that draws
// a route lives in app.js and registers itself here, so pages can navigate
// without importing the entry module (which would be an import cycle).

/** @typedef {{path: string, params: URLSearchParams}} Route */

/**
 * What the router gives a page: the route and the pattern's match.
 * @typedef {Route & {match: RegExpMatchArray}} PageContext
 */

/**
 * A page of the console. `page` draws it into `<main>` and may return a
 * cleanup, called when the user navigates away.
 * @typedef {object} PageRoute
 * @property {RegExp} pattern
 * @property {(main: HTMLElement, context: PageContext) => Promise<unknown>} page
 * @property {string} title      the document title and `data-page`
 * @property {string} [nav]      its label in the navigation, if it has one
 * @property {string} [href]     the path the navigation links to
 * @property {'admin' | 'platform'} [requires]  who may open it
 * @property {boolean} [public]  open without signing in
 * @property {boolean} [wide]    uses the whole window (the viewer)
 */

/** @type {(() => unknown) | null} */
let redraw = null;

/** Registers the router's draw function; `go` to the current route calls it. */
export function onRedraw(draw) {
  redraw = draw;
}

/**
 * Navigates to a hash route such as `/admin/resources`.
 * @param {string} path
 */
export function go(path) {
  const target = `#${path}`;
  // The same hash fires no hashchange: draw the page again ourselves.
  if (location.hash === target) redraw?.();
  else location.hash = target;
}

/**
 * The route in the address bar: its path and query parameters.
 * @returns {Route}
 */
export function currentRoute() {
  return parseRoute(location.hash);
}

/**
 * Splits a hash (`#/viewer/<id>?mode=shadow`) into path and parameters.
 * @param {string} hash
 * @returns {Route}
 */
export function parseRoute(hash) {
  const raw = hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  return { path: path || '/', params: new URLSearchParams(query) };
}
