// We need to forward routine registration from C to Rust
// to avoid the linker removing the static library.

void R_init_dbrxr_extendr(void *dll);
void register_extendr_panic_hook(void);

void R_init_dbrxr(void *dll) {
    // A panic never reaches R (bindings catch them); this keeps the hook quiet too.
    register_extendr_panic_hook();
    R_init_dbrxr_extendr(dll);
}
