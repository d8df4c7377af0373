// The viewer's frame decoder, off the main thread (a module worker started
// by frame-pipeline.js): inflates and expands `binary_v1` frame messages,
// one after another in the order they come.
//
// In:  {id, buffer}                       the frame message (transferred)
// Out: {ready}                            once, when loaded: whether it can decode
//      {id, header, rgba, offset, length} the pixels, RGBA8 (rgba transferred)
//      {id, error}                        why the frame could not be decoded

import { decodeFrame } from './frames.js';

let chain = Promise.resolve();

self.onmessage = (event) => {
  const { id, buffer } = event.data;
  chain = chain.then(async () => {
    let frame;
    try {
      frame = await decodeFrame(buffer);
    } catch (error) {
      self.postMessage({ id, error: String(error?.message ?? error) });
      return;
    }
    const { rgba, ...header } = frame;
    self.postMessage({ id, header, rgba: rgba.buffer, offset: rgba.byteOffset, length: rgba.length }, [rgba.buffer]);
  });
};

self.postMessage({ ready: typeof DecompressionStream === 'function' });
