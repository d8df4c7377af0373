// @ts-check
// The viewer's frame decoder, off the main thread (a module worker started
// by frame-pipeline.js): inflates and expands `binary_v1` pixel frames
// (frames.js) and decodes the H.264 ones (video-decoder.js), one message
// after another in the order they come: each is finished, an H.264 unit's
// picture out of the decoder, before the next one starts.
//
// In:  {id, buffer}                       the frame message (transferred)
//      {reset: true}                      frames were dropped: H.264 waits for a key frame
// Out: {ready, h264}                      once, when loaded: whether it can decode,
//                                         and whether H.264 too
//      {id, header, rgba, offset, length} the pixels, RGBA8 (rgba transferred);
//                                         width and height 0 when it paints nothing
//      {id, error}                        why the frame could not be decoded
// Replies to H.264 messages also carry `video`, the decoder's counts.

import { decodeFrame, isVideo, parseHeader } from './frames.js';
import { H264Decoder, h264Supported } from './video-decoder.js';

/**
 * This worker's global scope (the DOM library types `self` as a window).
 * @type {{postMessage(message: unknown, transfer?: Transferable[]): void, onmessage: ((event: MessageEvent) => void) | null}}
 */
const scope = /** @type {any} */ (self);

const video = new H264Decoder();
let chain = Promise.resolve();

scope.onmessage = (event) => {
  if (event.data.reset) {
    chain = chain.then(() => video.reset());
    return;
  }
  const { id, buffer } = event.data;
  chain = chain.then(async () => {
    let frame;
    let h264 = false;
    try {
      const header = parseHeader(buffer);
      h264 = isVideo(header.encoding);
      frame = h264 ? await video.decode(header) : await decodeFrame(buffer);
    } catch (error) {
      scope.postMessage({ id, error: String(error?.message ?? error), ...(h264 ? { video: { ...video.counts } } : {}) });
      return;
    }
    const { rgba, ...header } = frame;
    const reply = { id, header, rgba: rgba.buffer, offset: rgba.byteOffset, length: rgba.length, ...(h264 ? { video: { ...video.counts } } : {}) };
    scope.postMessage(reply, [rgba.buffer]);
  });
};

h264Supported().then((h264) => scope.postMessage({ ready: typeof DecompressionStream === 'function', h264 }));
