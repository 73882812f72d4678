//! Imports an interface no host provides: loading it must fail and name the import.
wit_bindgen::generate!({
    inline: "
        package test:missing;
        interface gadget { poke: func() -> u32; }
        world needs-gadget {
            import gadget;
            export run: func() -> u32;
        }
    ",
});

struct NeedsGadget;

impl Guest for NeedsGadget {
    fn run() -> u32 {
        test::missing::gadget::poke()
    }
}

export!(NeedsGadget);
