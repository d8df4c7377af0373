//! The screen's damage log, its decoder stores and its video stream.

use super::*;
use rap_storage::SessionId;

#[test]
fn a_new_viewer_gets_the_whole_screen_then_only_what_changed() {
    let screen = Screen::new(100, 50);
    let first = screen.damage_since(0).expect("something to send");
    assert!(first.full);
    assert_eq!(first.rects, [Rect::new(0, 0, 100, 50)]);
    assert_eq!(screen.damage_since(first.seq), None, "nothing new");

    screen.update(|canvas| canvas.fill(Rect::new(10, 10, 5, 5), [255, 0, 0, 255]));
    screen.update(|canvas| canvas.fill(Rect::new(80, 40, 50, 50), [0, 255, 0, 255]));
    let damage = screen.damage_since(first.seq).expect("damage");
    assert!(!damage.full);
    assert_eq!(damage.rects, [Rect::new(10, 10, 5, 5), Rect::new(80, 40, 20, 10)], "clipped to the screen");
    assert_eq!(screen.read_rect(Rect::new(10, 10, 1, 1), ColorMode::FullColor), [255, 0, 0, 255]);
    assert_eq!(screen.read_rect(Rect::new(10, 10, 1, 1), ColorMode::Grayscale), [76]);
}

#[test]
fn a_slow_viewer_gets_merged_damage_and_the_latest_pixels() {
    let screen = Screen::new(64, 64);
    let seen = screen.damage_since(0).expect("first").seq;
    for shade in 0..100u8 {
        screen.update(|canvas| canvas.fill(Rect::new(0, 0, 8, 8), [shade, shade, shade, 255]));
    }
    let damage = screen.damage_since(seen).expect("damage");
    assert_eq!(damage.rects, [Rect::new(0, 0, 8, 8)], "100 updates of one region are one rectangle");
    assert_eq!(
        screen.read_rect(Rect::new(0, 0, 1, 1), ColorMode::FullColor),
        [99, 99, 99, 255],
        "only the latest state"
    );
}

#[test]
fn a_viewer_behind_the_log_or_a_resize_gets_a_full_frame() {
    let screen = Screen::new(64, 64);
    let seen = screen.damage_since(0).expect("first").seq;
    for step in 0..(DAMAGE_LOG as u16 + 10) {
        screen.update(|canvas| canvas.fill(Rect::new(step % 64, 0, 1, 1), [1, 2, 3, 255]));
    }
    assert!(screen.damage_since(seen).expect("damage").full);
    let caught_up = screen.damage_since(0).expect("damage").seq;
    screen.resize(32, 16);
    let after = screen.damage_since(caught_up).expect("resize");
    assert!(after.full);
    assert_eq!((after.width, after.height, after.rects.clone()), (32, 16, vec![Rect::new(0, 0, 32, 16)]));
}

#[test]
fn scattered_damage_beyond_the_limit_becomes_one_box() {
    let screen = Screen::new(400, 400);
    let seen = screen.damage_since(0).expect("first").seq;
    screen.update(|canvas| {
        for index in 0..20u16 {
            canvas.fill(Rect::new(index * 20, index * 20, 2, 2), [9, 9, 9, 255]);
        }
    });
    let damage = screen.damage_since(seen).expect("damage");
    assert_eq!(damage.rects, [Rect::new(0, 0, 382, 382)]);
}

#[test]
fn put_copies_rows_and_clips() {
    let screen = Screen::new(4, 4);
    let block: Vec<u8> = (0..3 * 2).flat_map(|index| [index as u8, 0, 0, 255]).collect();
    screen.update(|canvas| canvas.put(Rect::new(2, 3, 3, 2), &block));
    // Only column 2..4 of row 3 is on screen: pixels 0 and 1 of the block's first row.
    assert_eq!(screen.read_rect(Rect::new(2, 3, 2, 1), ColorMode::FullColor), [0, 0, 0, 255, 1, 0, 0, 255]);
}

mod decoder_store_tests {
    use super::*;

    /// A decoder's own buffer, alpha left at zero as real decoders may.
    struct Decoded(Vec<u8>);

    impl PixelStore for Decoded {
        fn rgba(&self) -> &[u8] {
            &self.0
        }
        fn rgba_mut(&mut self) -> Option<&mut [u8]> {
            None
        }
        fn alpha_is_set(&self) -> bool {
            false
        }
        fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
            self
        }
    }

    #[test]
    fn a_decoder_paints_in_place_and_viewers_read_opaque_pixels() {
        let screens = Screens::default();
        let screen = screens.open_with(SessionId::generate(), 4, 2, Box::new(Decoded(vec![0; 4 * 2 * 4])));
        let seen = screen.damage_since(0).expect("first frame").seq;
        let painted = screen.decode_into(|store: &mut Decoded| {
            store.0[..4].copy_from_slice(&[10, 20, 30, 0]);
            ("decoded", vec![Rect::new(0, 0, 1, 1), Rect::new(3, 1, 5, 5)])
        });
        assert_eq!(painted, Some("decoded"));
        let damage = screen.damage_since(seen).expect("damage");
        assert_eq!(damage.rects, [Rect::new(0, 0, 1, 1), Rect::new(3, 1, 1, 1)], "clipped to the screen");
        assert_eq!(screen.read_rect(Rect::new(0, 0, 2, 1), ColorMode::FullColor), [10, 20, 30, 255, 0, 0, 0, 255]);
        assert_eq!(screens.published(), 1);
        // A decode that changed nothing is not an update.
        assert_eq!(screen.decode_into(|_: &mut Decoded| ((), Vec::new())), Some(()));
        assert_eq!(screen.damage_since(damage.seq), None);
        // Painting with the wrong store type is refused, not misread.
        assert_eq!(screen.decode_into(|_: &mut Vec<u8>| ((), Vec::new())), None);
        // Canvas painting cannot touch a decoder's pixels.
        screen.update(|canvas| canvas.fill(Rect::new(0, 0, 4, 2), [255, 255, 255, 255]));
        assert_eq!(screen.read_rect(Rect::new(0, 0, 1, 1), ColorMode::FullColor), [10, 20, 30, 255]);
        screen.replace_store(2, 2, Box::new(Decoded(vec![0; 2 * 2 * 4])));
        assert_eq!(screen.size(), (2, 2));
        assert!(screen.damage_since(damage.seq).expect("resized").full);
    }
}

mod video_tests {
    use super::super::*;
    use crate::protocol::video::VideoUnit;

    fn unit(key_frame: bool, region: Rect) -> VideoEvent {
        VideoEvent::Unit(VideoUnit {
            picture: Rect::new(0, 0, 64, 64),
            regions: vec![region],
            key_frame,
            data: vec![0, 0, 1, if key_frame { 0x65 } else { 0x41 }].into(),
        })
    }

    #[test]
    fn a_viewer_in_step_gets_units_for_what_they_painted_and_pixels_for_the_rest() {
        let screen = Screen::new(64, 64);
        let store = || Box::new(opaque_black(64, 64));
        screen.replace_store(64, 64, store());
        let joined = screen.catch_up_with(0, VideoPosition::Waiting, Wait::Yes).expect("read");
        assert!(matches!(joined.video, VideoCatchUp::Waiting));
        assert!(!screen.take_key_frame_wish(), "a host that never streamed H.264 is asked for no key frame");
        let seen = joined.damage.expect("the whole screen").seq;

        let painted = Rect::new(0, 0, 64, 32);
        screen.decode_with_video(|_: &mut Vec<u8>| {
            ((), vec![painted, Rect::new(0, 40, 8, 8)], vec![unit(true, painted)])
        });
        let step = screen.catch_up_with(seen, VideoPosition::Waiting, Wait::Yes).expect("read");
        let VideoCatchUp::Joined { units, painted_up_to, next } = &step.video else { panic!("{:?}", step.video) };
        assert_eq!((units.len(), *painted_up_to), (1, seen), "the key frame, painted: the canvas predates it");
        let damage = step.damage.expect("damage");
        assert_eq!(damage.rects, [Rect::new(0, 40, 8, 8)], "only what the unit did not paint comes as pixels");

        screen.decode_with_video(|_: &mut Vec<u8>| ((), vec![painted], vec![unit(false, painted)]));
        let live = screen.catch_up_with(damage.seq, VideoPosition::At(*next), Wait::Yes).expect("read");
        assert!(matches!(&live.video, VideoCatchUp::Live { units, .. } if units.len() == 1));
        assert_eq!(live.damage.expect("a new sequence").rects, [], "nothing beside the unit");
        let pixel_viewer = screen.catch_up_with(damage.seq, VideoPosition::Off, Wait::Yes).expect("read");
        assert_eq!(pixel_viewer.damage.expect("damage").rects, [painted], "a pixel viewer gets it as pixels");

        screen.resize(32, 32);
        let after = screen.catch_up_with(damage.seq, VideoPosition::At(*next + 1), Wait::Yes).expect("read");
        assert!(matches!(after.video, VideoCatchUp::Waiting), "a new screen is a new stream");
        assert!(after.damage.expect("damage").full);
        assert!(screen.take_key_frame_wish(), "a viewer waiting on a streaming host asks it for a key frame");
        assert!(!screen.take_key_frame_wish(), "once");
        let appliance_unit =
            VideoUnit { picture: Rect::new(0, 0, 8, 8), regions: vec![], key_frame: true, data: vec![0].into() };
        screen.own_for_video(Rect::new(0, 0, 8, 8));
        assert!(!screen.publish_encoded(appliance_unit), "the appliance never encodes over the host's stream");
    }

    fn encoded(key_frame: bool, region: Rect) -> VideoUnit {
        VideoUnit { picture: region, regions: vec![region], key_frame, data: vec![0, 0, 1, 0x65].into() }
    }

    #[test]
    fn the_appliances_stream_paints_its_region_and_gives_it_back_losslessly() {
        let screen = Screen::new(64, 64);
        let moving = Rect::new(0, 0, 32, 32);
        let start = screen.catch_up_with(0, VideoPosition::Waiting, Wait::Yes).expect("read");
        let seen = start.damage.expect("the whole screen").seq;
        assert!(screen.video_viewer_within(std::time::Duration::from_secs(1)), "an H.264 viewer watches");
        assert!(!screen.publish_encoded(encoded(true, moving)), "no region claimed, nothing published");

        screen.own_for_video(moving);
        screen.update(|canvas| {
            canvas.fill(Rect::new(4, 4, 8, 8), [1, 2, 3, 255]);
            canvas.fill(Rect::new(40, 40, 8, 8), [1, 2, 3, 255]);
        });
        assert!(screen.publish_encoded(encoded(true, moving)));
        assert!(screen.encoder_view(0, Wait::Yes).expect("read").joinable);
        let step = screen.catch_up_with(seen, VideoPosition::Waiting, Wait::Yes).expect("read");
        let VideoCatchUp::Joined { units, next, .. } = &step.video else { panic!("{:?}", step.video) };
        assert_eq!(units.len(), 1);
        let damage = step.damage.expect("damage");
        assert_eq!(damage.rects, [Rect::new(40, 40, 8, 8)], "inside the region the stream paints");
        let pixel_viewer = screen.catch_up_with(seen, VideoPosition::Off, Wait::Yes).expect("read");
        assert_eq!(pixel_viewer.damage.expect("damage").rects.len(), 2, "a pixel viewer gets both as pixels");

        screen.release_video(moving);
        assert!(!screen.encoder_view(0, Wait::Yes).expect("read").joinable, "the stream ended");
        let live = screen.catch_up_with(damage.seq, VideoPosition::At(*next), Wait::Yes).expect("read");
        assert!(matches!(&live.video, VideoCatchUp::Live { units, .. } if units.is_empty()));
        assert_eq!(live.damage.expect("the refinement").rects, [moving], "the region again, losslessly");
        let pixel_viewer = screen.catch_up_with(damage.seq, VideoPosition::Off, Wait::Yes).expect("read");
        assert_eq!(pixel_viewer.damage.expect("a new sequence").rects, [], "a pixel viewer has it already");
        screen.update(|canvas| canvas.fill(Rect::new(4, 4, 8, 8), [9, 9, 9, 255]));
        let after = screen.catch_up_with(live_seq(&screen) - 1, VideoPosition::At(*next), Wait::Yes).expect("read");
        let rects = after.damage.expect("damage").rects;
        assert_eq!(
            rects,
            [Rect::new(4, 4, 8, 8)],
            "once released, the region is pixels again, also for a video viewer"
        );
    }

    fn live_seq(screen: &Screen) -> u64 {
        screen.seq_with(Wait::Yes).expect("read")
    }
}
