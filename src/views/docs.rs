//! API 文档 / API docs: how to call the pool, with the base URL of the request (never hand-edited).

use maud::{Markup, html};

use super::layout::{PageContext, page};

/// The example model in every snippet.
pub(crate) const MODEL: &str = "Qwen/Qwen2.5-7B-Instruct";

/// Paths clients use most; every other `/v1` path is forwarded as it is.
const ENDPOINTS: [(&str, &str); 10] = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/rerank"),
    ("POST", "/v1/images/generations"),
    ("POST", "/v1/audio/transcriptions"),
    ("GET", "/v1/models"),
    ("GET", "/v1/dashboard/billing/subscription"),
    ("GET", "/v1/dashboard/billing/usage"),
    ("GET", "/v1/user/info"),
];

pub struct DocsView<'a> {
    /// e.g. `https://pool.example.com` (no trailing slash).
    pub base_url: &'a str,
    pub contact: Option<&'a str>,
}

fn curl_example(base: &str) -> String {
    format!(
        "curl {base}/v1/chat/completions \\\n  -H \"Authorization: Bearer YOUR_ACCESS_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  \
         -d '{{\"model\": \"{MODEL}\", \"messages\": [{{\"role\": \"user\", \"content\": \"你好\"}}], \"stream\": true}}'"
    )
}

fn python_example(base: &str) -> String {
    format!(
        "from openai import OpenAI\n\nclient = OpenAI(base_url=\"{base}/v1\", api_key=\"YOUR_ACCESS_KEY\")\n\n\
         stream = client.chat.completions.create(\n    model=\"{MODEL}\",\n    \
         messages=[{{\"role\": \"user\", \"content\": \"你好\"}}],\n    stream=True,\n)\n\
         for chunk in stream:\n    print(chunk.choices[0].delta.content or \"\", end=\"\")\n"
    )
}

fn js_example(base: &str) -> String {
    format!(
        "const res = await fetch(\"{base}/v1/chat/completions\", {{\n  method: \"POST\",\n  headers: {{\n    \
         \"Authorization\": \"Bearer YOUR_ACCESS_KEY\",\n    \"Content-Type\": \"application/json\",\n  }},\n  \
         body: JSON.stringify({{\n    model: \"{MODEL}\",\n    messages: [{{ role: \"user\", content: \"你好\" }}],\n    \
         stream: true,\n  }}),\n}});\n\
         const reader = res.body.getReader();\nconst decoder = new TextDecoder();\nfor (;;) {{\n  \
         const {{ done, value }} = await reader.read();\n  if (done) break;\n  \
         console.log(decoder.decode(value, {{ stream: true }})); // SSE lines: data: {{...}}\n}}\n"
    )
}

fn billing_example(base: &str) -> String {
    format!("curl {base}/v1/dashboard/billing/subscription \\\n  -H \"Authorization: Bearer YOUR_ACCESS_KEY\"")
}

fn snippet(ctx: &PageContext, id: &str, title_key: &str, code: String) -> Markup {
    let lang = ctx.lang;
    html! {
        div.snippet {
            div.snippet-head {
                h3 { (lang.t(title_key)) }
                button type="button" data-copy={ "#" (id) } data-copied=(lang.t("common.copied")) { (lang.t("common.copy")) }
            }
            pre { code #(id) { (code) } }
        }
    }
}

pub fn docs_page(ctx: &PageContext, v: &DocsView) -> Markup {
    let lang = ctx.lang;
    let base = v.base_url;
    page(
        ctx,
        lang.t("docs.title"),
        html! {
            h1 { (lang.t("docs.title")) }
            section.card {
                p { (lang.t("docs.intro")) }
                h2 { (lang.t("docs.base_url")) }
                div.token-row {
                    code #base-url { (format!("{base}/v1")) }
                    button type="button" data-copy="#base-url" data-copied=(lang.t("common.copied")) { (lang.t("common.copy")) }
                }
                h2 { (lang.t("docs.auth.title")) }
                p { (super::components::code_spans(lang.t("docs.auth.text"))) }
                @if let Some(contact) = v.contact {
                    p.contact { strong { (lang.t("docs.contact")) } " " (contact) }
                }
            }
            section.card {
                h2 { (lang.t("docs.examples")) }
                (snippet(ctx, "ex-curl", "docs.example.curl", curl_example(base)))
                (snippet(ctx, "ex-python", "docs.example.python", python_example(base)))
                (snippet(ctx, "ex-js", "docs.example.js", js_example(base)))
                (snippet(ctx, "ex-billing", "docs.example.billing", billing_example(base)))
            }
            section.card {
                h2 { (lang.t("docs.endpoints.title")) }
                p { (lang.t("docs.endpoints.text")) }
                div.table-wrap {
                    table {
                        tbody {
                            @for (method, path) in ENDPOINTS {
                                tr { td { code { (method) } } td { code { (base) (path) } } }
                            }
                        }
                    }
                }
                h2 { (lang.t("docs.why.title")) }
                ul {
                    li { (lang.t("docs.why.balance")) }
                    li { (lang.t("docs.why.failover")) }
                    li { (lang.t("docs.why.one_key")) }
                }
            }
        },
    )
}
