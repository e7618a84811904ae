//! Pages whose content arrives with later features; each says so.

use maud::{Markup, html};

use super::layout::{PageContext, page};

/// A titled page with a note on what will appear here.
pub fn coming_page(ctx: &PageContext, title_key: &str, note_key: &str) -> Markup {
    let lang = ctx.lang;
    page(
        ctx,
        lang.t(title_key),
        html! {
            section.card {
                h1 { (lang.t(title_key)) }
                p.muted { (lang.t(note_key)) }
            }
        },
    )
}
