//! The price table page (`/admin/settings/prices`): each model's price per million input and output
//! tokens, behind the estimated cost of every request; add, change or remove a price.

use maud::{Markup, html};

use super::components::{FlashKind, field_error, flash};
use super::layout::{PageContext, page};
use crate::domain::FieldErrors;
use crate::domain::tokens::Price;
use crate::i18n::Lang;

pub struct PricesView<'a> {
    /// Each model with its price, by name.
    pub rows: &'a [(String, Price)],
    /// What the form shows (after an error, what was typed).
    pub model: &'a str,
    pub input: &'a str,
    pub output: &'a str,
    pub errors: &'a FieldErrors,
    pub flash: Option<(FlashKind, String)>,
}

pub fn prices_page(ctx: &PageContext, v: &PricesView) -> Markup {
    let lang = ctx.lang;
    page(
        ctx,
        lang.t("prices.title"),
        html! {
            p.back { a href="/admin/settings" { "← " (lang.t("prices.back")) } }
            h1 { (lang.t("prices.title")) }
            section.card.wide #prices {
                p.help { (lang.t("prices.help")) }
                @if let Some((kind, text)) = &v.flash { (flash(*kind, text)) }
                (price_form(lang, v))
                (price_table(lang, v.rows))
            }
        },
    )
}

fn price_form(lang: Lang, v: &PricesView) -> Markup {
    let invalid = |field: &str| v.errors.get(field).map(|_| "true");
    html! {
        form.price-form method="post" action="/admin/settings/prices" {
            div.field {
                label for="price-model" { (lang.t("prices.model")) }
                input #price-model name="model" type="text" maxlength="200" required value=(v.model)
                    placeholder="deepseek-ai/DeepSeek-V3" aria-invalid=[invalid("model")];
                (field_error(lang, v.errors, "model"))
            }
            div.field {
                label for="price-input" { (lang.t("prices.input")) }
                input #price-input name="input_per_m" type="text" inputmode="decimal" required value=(v.input)
                    aria-invalid=[invalid("input_per_m")];
                (field_error(lang, v.errors, "input_per_m"))
            }
            div.field {
                label for="price-output" { (lang.t("prices.output")) }
                input #price-output name="output_per_m" type="text" inputmode="decimal" required value=(v.output)
                    aria-invalid=[invalid("output_per_m")];
                (field_error(lang, v.errors, "output_per_m"))
            }
            button.primary type="submit" { (lang.t("prices.save")) }
        }
    }
}

fn price_table(lang: Lang, rows: &[(String, Price)]) -> Markup {
    html! {
        @if rows.is_empty() {
            p.muted { (lang.t("prices.empty")) }
        } @else {
            div.table-wrap {
                table.prices {
                    thead { tr {
                        th { (lang.t("prices.model")) }
                        th.count { (lang.t("prices.input")) }
                        th.count { (lang.t("prices.output")) }
                        th { span.sr-only { (lang.t("access_keys.actions")) } }
                    } }
                    tbody {
                        @for (model, price) in rows {
                            tr data-model=(model) {
                                td { code { (model) } }
                                td.count { (price.input_per_m) }
                                td.count { (price.output_per_m) }
                                td {
                                    form method="post" action="/admin/settings/prices/remove" {
                                        input type="hidden" name="model" value=(model);
                                        button.danger type="submit" { (lang.t("prices.remove")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
