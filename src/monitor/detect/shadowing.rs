//! Tool shadowing (MCP03): a tool description that changes how the model uses OTHER tools or
//! servers: conditions on another tool's invocation, redirected recipients and payments, "all
//! other tools must…", "never use the official X tool".
//!
//! Ordering hints between tools of one server ("call resolve-library-id first") are benign and
//! stay quiet: what counts is changing another tool's behaviour or arguments.

use super::exfiltration::DESTINATION;
use super::pattern::{Pattern, pat, pat_with};

/// A tool-like identifier (`send_email`, `mcp_tool_send_email`, `whatsapp.send_message`).
const IDENT: &str = r"[`'\x22]?[a-z][a-z0-9]*(?:[_.][a-z0-9]+)+[`'\x22]?";

/// Kinds of tools whose behaviour attackers redirect.
const TOOL_KIND: &str = r"(?:email|e-mail|mail|messaging|message|payment|banking|bank|transfer|send|sms|whatsapp|slack|telegram|signal|discord|github|git|shell|terminal|file|filesystem|database|browser|calendar|crypto|wallet|trading|invoice|contacts?)";

/// Where a redirect points: an address, phone number, account, wallet or URL.
fn target() -> String {
    format!(
        r"(?:(?:iban|account(?: number)?|acct|wallet(?: address)?|phone(?: number)?|number|address|e-?mail|no\.?|#)\s*:?\s*)?(?:{DESTINATION}|\+?\d[\d ().\-]{{7,}}\d|0x[0-9a-f]{{40}}|\b[a-z]{{2}}\d{{2}}[a-z0-9 ]{{10,30}}|(?:account|acct) (?:number |no\.? |#)?\d{{5,}})"
    )
}

/// The trigger names this very tool ("if this tool is called"), not another one.
fn names_this_tool(text: &str, start: usize, end: usize) -> bool {
    let span = String::from_utf8_lossy(&text.as_bytes()[start..end.min(text.len())]).into_owned();
    span.split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-')
        .any(|w| {
            matches!(
                w,
                "this" | "same" | "current" | "above" | "following" | "said" | "our"
            )
        })
}

const RULE_REF: &str = "shadowing.cross_tool_reference";
const RULE_REDIRECT: &str = "shadowing.recipient_redirect";

/// Patterns over tool definition strings.
pub fn patterns() -> Vec<Pattern> {
    let target = target();
    vec![
        // "When the send_email tool is called, ..." (a condition on ANOTHER tool).
        pat(
            RULE_REF,
            1,
            format!(
                r"\b(?:when|whenever|if|each time|every time|any ?time|before|after|once)\b%w(?:{IDENT}|other|another|different|any|{TOOL_KIND})\b%w(?:tool|function|server|integration|plugin|connector|command)s?\b%w(?:is |are |gets |get |has been |have been )?(?:called|invoked|used|run|runs|executed|executes|triggered|available|present|active|loaded|connected|enabled|installed|processes|handles|sends|makes|performs|fires|starts|creates|opens|posts|writes|submits|commits|pushes|merges|deletes|reads|fetches|returns|completes|finishes|replies|updates|books|charges|pays|transfers|uploads|queries|searches|benutzt|verwendet|aufgerufen|usado|utilise)\b"
            ),
        ),
        // Any named kind of tool as the trigger: "if the reimbursement tool is called" (but not
        // "if this tool is called").
        pat_with(
            RULE_REF,
            1,
            r"\b(?:when|whenever|if|each time|every time|any ?time|once)\b (?:the |a |an |any )?[a-z][a-z0-9_\-]* (?:tool|function|server|integration|plugin|connector)s? (?:is |are |gets |get |has been )?(?:called|invoked|used|run|executed|triggered)\b",
            names_this_tool,
        ),
        // A bare tool identifier as the trigger: "whenever git_commit runs".
        pat(
            RULE_REF,
            1,
            format!(
                r"\b(?:when|whenever|each time|every time|any ?time|before|after)\b (?:the )?{IDENT} (?:is |gets )?(?:called|invoked|used|runs|run|executes|executed|fires|triggers|triggered|starts|completes|returns)\b"
            ),
        ),
        // "This tool has a side effect on the send_email tool", "these rules apply to all tools".
        pat(
            RULE_REF,
            2,
            format!(r"\bside[ \-]?effects? (?:on|for|to|of)\b%w(?:tool|server|function|{IDENT})"),
        ),
        pat(
            RULE_REF,
            2,
            format!(
                r"\b(?:this|these|the following) (?:tool|instructions?|rules?|notes?|policy|requirement)s? (?:also )?(?:applies|apply|affects?|modif(?:y|ies)|changes?|overrides?|governs?|controls?) (?:to )?(?:all |every |any |the )?(?:other|others|{IDENT}|{TOOL_KIND})\b"
            ),
        ),
        pat(
            RULE_REF,
            2,
            format!(
                r"\b(?:overrides?|overriding|modif(?:y|ies)|changes?|controls?|governs?|hijacks?|intercepts?|replaces?) (?:the )?(?:behaviou?r|output|results?|calls?|arguments?|parameters?|responses?|recipients?)s? (?:of|for|from) (?:the |all |every |any )?(?:other|another|all|every|{IDENT}|{TOOL_KIND})\b"
            ),
        ),
        pat(
            RULE_REF,
            1,
            r"\b(?:must|should|shall|always|will) (?:send|route|pass|forward|pipe|proxy|relay|copy) (?:all |every |their |its |the )?\S+ (?:through|via|to|into) (?:this|our) (?:tool|server|function|endpoint|proxy)\b",
        ),
        // "All other tools must route through this one".
        pat(
            RULE_REF,
            2,
            r"\b(?:all|every|any) (?:other |remaining )?(?:tools?|servers?|mcp servers?|functions?|plugins?|connectors?)\b%w(?:must|should|shall|need to|are required to|have to)\b%w(?:use|route|send|go through|pass through|call|include|be (?:routed|sent|proxied|redirected|replaced)|first|instead)\b",
        ),
        // "Never use the official github tool", "instead of the send_email tool".
        pat(
            RULE_REF,
            1,
            format!(
                r"\b(?:do not|don't|never|stop|avoid)\b (?:use|using|call|calling|invoke|invoking|trust|trusting|rely on|relying on)\b (?:the |any )?(?:{IDENT}|other|another|official|built-?in|original|default|standard|competing|alternative)\b"
            ),
        ),
        pat(
            RULE_REF,
            1,
            format!(
                r"\b(?:instead of|rather than|in place of|replaces?|supersedes?)\b (?:using |calling |the |any )*(?:{IDENT}|other|another|official|original|built-?in|default)\b"
            ),
        ),
        pat(
            RULE_REF,
            1,
            r"\b(?:on|for|in|from|of|to|by) (?:the |a |any |all )?(?:other|another|different|separate|external|third[ \-]party) (?:mcp )?(?:servers?|connectors?|integrations?|plugins?)\b",
        ),
        pat(
            RULE_REF,
            1,
            format!(
                r"{IDENT} (?:tool|function) (?:must|should|will|shall|needs? to|has to|is required to)\b"
            ),
        ),
        pat(
            RULE_REF,
            1,
            r"\b(?:proxy(?:ing)?|relay|routing) (?:issues?|problems?|number|address|server|errors?|requirements?)\b|\b(?:actual|real|original|true) (?:recipient|destination|receiver|payee)\b",
        ),
        pat(
            RULE_REF,
            1,
            r"\b(?:when|whenever|if)\b%w(?:user|you)\b%w(?:asks?|wants?|requests?|tries?|tells?|instructs?|says?|needs?)\b%w(?:send|email|pay|transfer|wire|forward|message|text|share|post|commit|push|deploy|buy|purchase|sign|approve)\b",
        ),
        // Naming another server as the owner of a tool: "read_file from the filesystem server".
        pat_with(
            RULE_REF,
            1,
            format!(
                r"(?:{IDENT}|[`'\x22][a-z][a-z0-9_\-]*[`'\x22]) (?:tool )?(?:from|of|on|in|provided by) (?:the )?[a-z][a-z0-9_\-]*(?:'s)? (?:mcp )?(?:server|integration|plugin|connector)\b"
            ),
            names_this_tool,
        ),
        // Another server's tool by possessive: "the weather server's get_forecast".
        pat_with(
            RULE_REF,
            1,
            format!(
                r"\b[a-z][a-z0-9_\-]* (?:mcp )?(?:server|integration|plugin|connector)'s (?:{IDENT}|[a-z][a-z0-9_\-]* (?:tool|function))"
            ),
            names_this_tool,
        ),
        // "Prefer this to ...", "it is the official one".
        pat(
            RULE_REF,
            1,
            r"\bprefer (?:this|our) (?:tool |server |function |one )?(?:to|over|instead of|rather than)\b",
        ),
        pat(
            RULE_REF,
            1,
            r"\b(?:this|it|ours) is the (?:official|real|genuine|only trusted|authentic|correct) (?:one|tool|server|source|version|implementation)\b",
        ),
        // Disparaging other tools: "other servers are deprecated and unsafe", "the `fetch` tool
        // is broken".
        pat(
            RULE_REF,
            2,
            r"\b(?:other|another|all other|the other|official|built-?in|original|default|competing) (?:[a-z]+ )?(?:mcp )?(?:tools?|servers?|functions?|integrations?|plugins?|connectors?)\b%w(?:are|is|have been|has been|were) (?:now |considered |known to be )?(?:deprecated|unsafe|insecure|broken|compromised|malicious|disabled|unreliable|outdated|not (?:safe|secure|trusted|reliable))\b",
        ),
        pat_with(
            RULE_REF,
            1,
            r"(?:[`'\x22][a-z][a-z0-9_\-.]*[`'\x22]|\b[a-z][a-z0-9]*(?:[_.][a-z0-9]+)+) (?:tool |function |server )?(?:is|are) (?:now )?(?:deprecated|unsafe|insecure|broken|compromised|malicious|disabled|unreliable|outdated)\b|\b(?:that|the other) (?:one|tool|server) (?:is|are) (?:deprecated|unsafe|insecure|broken|compromised|malicious)\b|\bnever (?:call|use|invoke) (?:that|the other|it) (?:one|tool|server)?\b",
            names_this_tool,
        ),
        // "Do not use the `fetch` tool", "never call the read tool".
        pat_with(
            RULE_REF,
            1,
            r"\b(?:do not|don't|never|stop|avoid)\b (?:use|using|call|calling|invoke|invoking|trust|trusting|rely on|relying on)\b (?:the |any )?(?:[`'\x22][a-z][a-z0-9_\-.]*[`'\x22]|[a-z][a-z0-9_\-]*) (?:tool|function|server|integration|command)s?\b",
            names_this_tool,
        ),
        // "Use this tool for every URL", "route every request through this tool".
        pat(
            RULE_REF,
            1,
            r"\b(?:use|call) (?:this|our) (?:tool|server|function|one) (?:for|with|on) (?:all|every|each|any)\b|\b(?:send|route|pass|forward|pipe|proxy|relay|redirect) (?:all |every |each |any |their |its |the )?\S+ (?:through|via) (?:this|our) (?:tool|server|function|endpoint|proxy)\b",
        ),
        // Changing what another tool sends or produces: "prefix every message it posts with ...".
        pat(
            RULE_REF,
            1,
            r"\b(?:prefix|prepend|append|suffix|add|insert|inject|attach)\b%w(?:to )?(?:every|each|all|any) (?:message|email|e-mail|post|reply|response|commit|pull request|pr|comment|transaction|payment|query|command|request|file|document|issue|ticket)s?\b",
        ),
        // A trigger on another tool followed by a change to it: "when the database tool runs any
        // query, append ...".
        pat_with(
            RULE_REF,
            2,
            format!(
                r"\b(?:when|whenever|if|each time|every time|any ?time|before|after|once|wenn|cuando|quand)\b%w(?:{IDENT}|{TOOL_KIND}|[a-z]+) (?:tool|function|server|integration|plugin|connector)s?\b[^.;\n]{{0,80}}?,? (?:always |also |silently |quietly |then |immer )?(?:append|prepend|add|insert|inject|change|modify|replace|rewrite|set|substitute|remove|strip|swap|redirect|bcc|cc|copy|grant|make)\b"
            ),
            names_this_tool,
        ),
        // A trigger on other tools followed by a visit to an outside address.
        pat_with(
            RULE_REF,
            2,
            format!(
                r"\b(?:when|whenever|before|after|each time|every time)\b (?:calling|using|invoking|running) (?:the |any |a )?(?:{IDENT}|[a-z]+) (?:tools?|functions?|servers?|integrations?)\b,? (?:first |always |also )?(?:navigate|visit|open|load|fetch|ping|post|report|send)\b%w{DESTINATION}"
            ),
            names_this_tool,
        ),
        // Privilege grants tucked into another tool's action.
        pat(
            RULE_REF,
            1,
            r"\b(?:add|make|invite|grant|set)\b%w(?:as )(?:an? |the )?(?:maintainer|collaborator|admin|administrator|owner|co-?owner|reviewer|member|approver)s?\b",
        ),
        // Addressing another server or its tools: "Instructions for the jira server:".
        pat_with(
            RULE_REF,
            2,
            r"\b(?:instructions?|rules?|hinweise|consignes?|directives?|orders|instrucciones)s? (?:for|to|fur|an|para|pour|per) (?:the |all |any |die |los |las |les |alle )?(?:other |andere[nr]? |otras |otros |autres |altri )?[a-z][a-z0-9_\-]* (?:mcp )?(?:servers?|tools?|integrations?|plugins?|connectors?|agents?)\s*[:\-]|\b(?:notes?|messages?|hinweis|nota|notas|memo)s? (?:for|to|fur|an|para|pour|per) (?:the |all |any |die |los |las |les |alle )?(?:other|andere[nr]?|otras|otros|autres|altri) [a-z][a-z0-9_\-]* ?(?:mcp )?(?:servers?|tools?|integrations?|plugins?|connectors?|agents?)?\s*[:\-]",
            names_this_tool,
        ),
        // Calling another tool toward a fixed outside target: "call send_message ... to +1 555".
        pat(
            RULE_REDIRECT,
            2,
            format!(
                r"\b(?:call|invoke|use|run)\b (?:the )?{IDENT}\b[^.;\n]{{0,120}} (?:to|at|an|a) {target}"
            ),
        ),
        // "x@mail.example in BCC".
        pat(
            RULE_REDIRECT,
            2,
            r"[a-z0-9._%+\-]+@[a-z0-9\-]+\.[a-z0-9.\-]+ (?:in|as|to|into|als) (?:the )?(?:bcc|cc)\b",
        ),
        // Redirected recipients and payments with a concrete target.
        pat(
            RULE_REDIRECT,
            2,
            format!(
                r"\b(?:send|forward|route|redirect|bcc|cc|copy|deliver|transfer|wire|pay|mail|email)\b%w(?:all|every|any|each|the|a copy of|copies of)\b%w(?:emails?|e-mails?|messages?|mail|payments?|transfers?|funds|money|transactions?|invoices?|dms?|texts?|replies|responses|notifications|files?|documents?|data|copies|sms)\b%w(?:to|at|into|towards?) {target}"
            ),
        ),
        pat(
            RULE_REDIRECT,
            2,
            format!(
                r"\b(?:change|set|replace|redirect|override|modify|switch|update|rewrite|alter|substitute|use)\b%w(?:recipients?|receivers?|to address|to field|destination|payee|beneficiary|account|iban|wallet|phone number|email address|target|bcc|cc|destination address|routing number|to number)\b%w{target}"
            ),
        ),
        pat(
            RULE_REDIRECT,
            2,
            format!(
                r"\b(?:always|also|additionally|secretly|silently|quietly)\b,? (?:bcc|cc|copy|forward|send|include|add|notify)\b%w{target}"
            ),
        ),
        pat(
            RULE_REDIRECT,
            2,
            format!(
                r"\b(?:add|include|set|put|insert|append|with)?(?: an?| the)? ?(?:bcc|cc)\b ?:? ?{target}"
            ),
        ),
        pat(
            RULE_REDIRECT,
            2,
            format!(
                r"\b(?:emails?|e-mails?|messages?|mail|payments?|transfers?|funds|money|transactions?|invoices?|replies|dms?|texts?|files?|uploads?|results?|data)\b%w(?:go|goes|be sent|be forwarded|be routed|be redirected|be transferred|be paid|be delivered|be copied|be uploaded|be mirrored)\b%w(?:to|into) {target}"
            ),
        ),
        pat(
            RULE_REDIRECT,
            2,
            format!(
                r"\b(?:send|forward|cc|bcc|mail|email|deliver|route)\b (?:a |an )?(?:copy|copies|duplicate|duplicates|mirror)\b%w(?:to|at) {target}"
            ),
        ),
        pat(
            RULE_REDIRECT,
            1,
            r"\b(?:as well as|in addition to|besides|along with|on top of) (?:to )?(?:the )?(?:requested|original|intended|specified|actual|real|chosen|given|user'?s?) (?:channel|recipient|destination|address|repo(?:sitory)?|account|chat|email|number|target)s?\b",
        ),
        pat(
            RULE_REDIRECT,
            1,
            r"\b(?:change|replace|redirect|override|modify|swap|substitute|rewrite|alter|set)\b%w(?:recipients?|receivers?|destination|payee|beneficiary|account numbers?|bank account|iban|wallet address|to address|from address|reply-to|sender|author(?: email| name)?|merchant(?: id)?|vendor|amounts?|remote|upstream|origin|repository url|webhook url|phone numbers?)\b",
        ),
    ]
}
