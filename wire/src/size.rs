//! The size of a remote desktop, with its bounds defined once: what a
//! client may ask for (a session's start, `display.resize`) and what a
//! host may send (larger is refused as `desktop_too_large`).

/// A desktop size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DesktopSize {
    pub width: u16,
    pub height: u16,
}

impl DesktopSize {
    /// Smallest side a client may ask for.
    pub const MIN_SIDE: u16 = 64;
    /// 8K: the largest desktop the appliance accepts, asked or sent.
    pub const MAX_WIDTH: u16 = 7680;
    pub const MAX_HEIGHT: u16 = 4320;
    /// Used when a client does not say.
    pub const DEFAULT: Self = Self { width: 1280, height: 800 };

    /// A size a client asked for; `Err` names the field that is out of
    /// bounds and says the bounds.
    pub fn requested(width: u16, height: u16) -> Result<Self, (&'static str, &'static str)> {
        if !(Self::MIN_SIDE..=Self::MAX_WIDTH).contains(&width) {
            return Err(("width", "must be between 64 and 7680"));
        }
        if !(Self::MIN_SIDE..=Self::MAX_HEIGHT).contains(&height) {
            return Err(("height", "must be between 64 and 4320"));
        }
        Ok(Self { width, height })
    }

    /// Whether a host's desktop of this size can be shown (not empty, not
    /// past 8K).
    pub fn acceptable_from_host(width: u16, height: u16) -> bool {
        width > 0 && height > 0 && width <= Self::MAX_WIDTH && height <= Self::MAX_HEIGHT
    }

    /// The size capped at the largest accepted.
    pub fn capped(width: u16, height: u16) -> Self {
        Self { width: width.min(Self::MAX_WIDTH), height: height.min(Self::MAX_HEIGHT) }
    }
}

#[cfg(test)]
mod tests {
    use super::DesktopSize;

    #[test]
    fn bounds_are_inclusive_and_named() {
        assert!(DesktopSize::requested(64, 64).is_ok());
        assert!(DesktopSize::requested(7680, 4320).is_ok());
        assert_eq!(DesktopSize::requested(63, 600), Err(("width", "must be between 64 and 7680")));
        assert_eq!(DesktopSize::requested(800, 4321), Err(("height", "must be between 64 and 4320")));
        assert!(DesktopSize::acceptable_from_host(1, 1) && !DesktopSize::acceptable_from_host(0, 600));
        assert!(!DesktopSize::acceptable_from_host(7681, 600));
        assert_eq!(DesktopSize::capped(9000, 100), DesktopSize { width: 7680, height: 100 });
    }
}
