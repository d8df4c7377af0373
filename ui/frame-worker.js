// @ts-check
// The viewer's frame decoder, off the main thread (a module worker started
// by frame-pipeline.js): inflates and expands `binary_v1` frame messages,
// one after another in the order they come.
//
// In:  {id, buffer}                       the frame message (transferred)
// Out: {ready}                            once, when loaded: whether it can decode
//      {id, header, rgba, offset, length} the pixels, RGBA8 (rgba transferred)
//      {id, error}                        why the frame could not be decoded

import { decodeFrame } from './frames.js';

/**
 * This worker's global scope (the DOM library types `self` as a window).
 * @type {{postMessage(message: unknown, transfer?: Transferable[]): void, onmessage: ((event: MessageEvent) => void) | null}}
 */
const scope = /** @type {any} */ (self);

let chain = Promise.resolve();

scope.onmessage = (event) => {
  const { id, buffer } = event.data;
  chain = chain.then(async () => {
    let frame;
    try {
      frame = await decodeFrame(buffer);
    } catch (error) {
      scope.postMessage({ id, error: String(error?.message ?? error) });
      return;
    }
    const { rgba, ...header } = frame;
    scope.postMessage({ id, header, rgba: rgba.buffer, offset: rgba.byteOffset, length: rgba.length }, [rgba.buffer]);
  });
};

scope.postMessage({ ready: typeof DecompressionStream === 'function' });
