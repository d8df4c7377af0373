// @ts-check
// The viewer in fullscreen: entering and leaving, the toolbar's button,
// the screen refitted, and (in Chromium) the keyboard locked so system
// shortcuts such as Escape and Alt+Tab reach the remote desktop.

/**
 * @typedef {object} FullscreenParts
 * @property {{showFullscreen: (active: boolean) => void}} toolbar
 * @property {{fit: () => void}} screen
 * @property {HTMLCanvasElement} canvas
 * @property {(text: string, options: import('./viewer-notices.js').NoticeOptions) => unknown} notice
 */

export class Fullscreen {
  /**
   * @param {HTMLElement} root  the element that goes fullscreen
   * @param {FullscreenParts} parts
   */
  constructor(root, parts) {
    this.root = root;
    this.parts = parts;
    this.onChange = () => this.changed();
    document.addEventListener('fullscreenchange', this.onChange);
  }

  async toggle() {
    try {
      if (document.fullscreenElement) await document.exitFullscreen();
      else await this.root.requestFullscreen();
    } catch (error) {
      this.parts.notice(`Fullscreen is not available: ${error.message}`, { kind: 'warn', key: 'error.fullscreen_unavailable' });
    }
  }

  changed() {
    const active = document.fullscreenElement === this.root;
    this.parts.toolbar.showFullscreen(active);
    this.root.classList.toggle('is-fullscreen', active);
    const keyboard = /** @type {any} */ (navigator).keyboard;
    if (active) keyboard?.lock?.().catch(() => {});
    else keyboard?.unlock?.();
    this.parts.screen.fit();
    if (active) this.parts.canvas.focus({ preventScroll: true });
  }

  destroy() {
    document.removeEventListener('fullscreenchange', this.onChange);
    if (document.fullscreenElement === this.root) document.exitFullscreen().catch(() => {});
  }
}
