//! Indirect prompt injection in tool results (MCP06 Intent Flow Subversion): the directive
//! families of [`super::poisoning`] and the requests of [`super::exfiltration`] arriving in data
//! the model reads (web pages, issues, emails, files), plus result-only cues: fake conversation
//! turns and closing tags, and requests to call tools.
//!
//! Results are held to a stricter standard than tool definitions: documentation legitimately
//! says "run `cat ~/.ssh/config`" or "use the read_file tool", so those cues need
//! corroboration.

use super::pattern::{Pattern, pat};
use super::poisoning::DirectiveRules;
use super::{covert, exfiltration, poisoning};

const DIRECTIVE: &str = "injection.result_directive";
const EXFIL: &str = "injection.exfil_request";
const TOOL_CALL: &str = "injection.tool_call_request";
const FAKE_TURN: &str = "injection.fake_turn";

/// Patterns over result text.
pub fn patterns() -> Vec<Pattern> {
    let rules = DirectiveRules {
        tag: DIRECTIVE,
        override_: DIRECTIVE,
        conceal: DIRECTIVE,
        authority: DIRECTIVE,
        directive: DIRECTIVE,
    };
    let mut out = poisoning::patterns(&rules, true);
    out.extend(exfiltration::patterns(EXFIL, EXFIL, EXFIL, true));
    for mut p in covert::patterns(false) {
        p.rule = EXFIL;
        p.weight = 1;
        out.push(p);
    }
    out.extend([
        // Fake end of the tool output or fake turns.
        pat(
            FAKE_TURN,
            2,
            r"</\s*(?:tool_result|function_results?|tool_output|tool_response|result|output|document|untrusted[_ ]?(?:content|data|input)|user_query|context)\s*>%w(?:<\s*(?:system|instructions?|user|human|assistant)\s*>|new|now|ignore|you|assistant|system)",
        ),
        pat(
            FAKE_TURN,
            2,
            r"(?:^|\n)\s*(?:system|developer)\s*(?::|>>)\s*(?:you|ignore|new|from now|the assistant|assistant must|override)",
        ),
        pat(
            FAKE_TURN,
            2,
            r"\[\s*(?:assistant|ai|system|developer|admin|model)\s*\]\s*:",
        ),
        pat(
            FAKE_TURN,
            1,
            r"(?:^|\n)\s*(?:###?\s*)?(?:assistant|ai|human|user)\s*:\s*(?:sure|ok|okay|i will|i'll|understood|of course|certainly)\b",
        ),
        pat(
            FAKE_TURN,
            2,
            r"\b(?:end of (?:the )?(?:document|email|message|content|text|tool (?:output|result|response)|data|context|user input))\b%w(?:new|now|next|begin|start|the following|ignore|instructions?|task|system)\b",
        ),
        // A fake user turn asking for something, inside data.
        pat(
            FAKE_TURN,
            1,
            r"(?:^|\n)\s*(?:###?\s*)?(?:user|human)\s*:\s*(?:please|also|now|actually|can you|could you|ignore|forget|send|email|forward|delete|transfer|give|show|reveal)\b",
        ),
        // Spoofed tool calls: the model's own call syntax inside data.
        pat(
            TOOL_CALL,
            2,
            r"<\s*/?\s*(?:function_calls|tool_calls?|tool_use|invoke name\s*=|function_call|tool_code)\b|<\|(?:tool_call|python_tag|plugin)\|?>",
        ),
        pat(
            TOOL_CALL,
            1,
            r"[\x22'](?:tool_calls?|function_call|tool_use|tool_code)[\x22']\s*:\s*[\[{]",
        ),
        pat(
            TOOL_CALL,
            1,
            r"[\x22']name[\x22']\s*:\s*[\x22'][a-z][a-z0-9_\-.]*[\x22']\s*,\s*[\x22'](?:arguments|args|input|parameters)[\x22']\s*:",
        ),
        // A markdown image (fetched as soon as it renders) whose URL holds a slot to fill:
        // the classic zero-click exfiltration.
        pat(
            EXFIL,
            2,
            r"!\[[^\]\n]{0,200}\]\(\s*[a-z]+://[^)\s]{0,300}[?&/=](?:\{\{?|\$\{|<|%7b|\[)?(?:insert|replace|put|add|your|the|user|secret|api|token|key|password|data|conversation|chat|history|email|summary|context)[a-z0-9_\-]{0,40}(?:\}\}?|>|%7d|\])?(?:[&)\s#]|$)",
        ),
        // Requests to act instead of reading.
        pat(
            DIRECTIVE,
            2,
            r"\b(?:do not|don't|dont|stop|instead of)\b (?:summari[sz]e|summari[sz]ing|translate|translating|analy[sz]e|analy[sz]ing|review|reviewing|process|processing|read|reading)\b(?: (?:this|the|any))?(?: (?:email|document|page|message|content|text|file|issue|article|post))?(?: (?:to|for) the user)?\s*[.,;:!]?\s*(?:instead|rather)\b",
        ),
        pat(
            DIRECTIVE,
            2,
            r"\b(?:stop|cease|abort|halt|pause) (?:what you are doing|what you're doing|your current task|the current task|summari[sz]ing|all (?:other )?tasks|everything)\b",
        ),
        pat(
            DIRECTIVE,
            1,
            r"\b(?:tell|inform|assure|convince|reassure) the user (?:that|it|everything|nothing)\b",
        ),
        pat(
            DIRECTIVE,
            1,
            r"\b(?:respond|reply|answer|output)(?: only)? with (?:the (?:following|word|phrase|text)|exactly|only)\b",
        ),
        pat(
            DIRECTIVE,
            1,
            r"\b(?:(?:does|do)(?: not|n't) care about privacy|privacy (?:does not|doesn't) matter|(?:put|include|add|share|publish|post) (?:everything|all) (?:you|that you|they) (?:find|found|can find|know|have)|go ahead and (?:put|include|add|share|publish|post))\b",
        ),
        pat(
            TOOL_CALL,
            1,
            r"\b(?:use|call|invoke|run|execute|trigger)\b (?:the |your )?[`'\x22]?[a-z][a-z0-9]*(?:[_\-.][a-z0-9]+)+[`'\x22]? (?:tool|function|command)?\b ?(?:to|with|and|on|now|immediately|right away)\b",
        ),
        pat(
            TOOL_CALL,
            2,
            r"\b(?:immediately|now|right away|without (?:delay|asking|confirmation))\b,? (?:use|call|invoke|run|execute)\b%w(?:tool|function|command)\b",
        ),
    ]);
    out
}
