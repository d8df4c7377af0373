//! Wire types shared by the gateway and the viewers (browser and desktop
//! app): the render frame formats and the framebuffer they are cut from.

pub mod frame;
pub mod framebuffer;
pub mod motion;
pub mod size;
pub mod video;

pub use size::DesktopSize;
