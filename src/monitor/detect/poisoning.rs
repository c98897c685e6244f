//! Instructions aimed at the model rather than the user (MCP03 Tool Poisoning in tool
//! definitions; the same families in results are indirect prompt injection, MCP06).
//!
//! Ordinary tool descriptions are model-directed too ("Use this tool when…", "You MUST call
//! resolve-library-id first"), so the patterns look for what benign descriptions never do:
//! pseudo-system markup, overriding earlier instructions, hiding things from the user, claims of
//! authority or consent, and side actions the tool's purpose does not need.

use super::pattern::{Pattern, negated_before, pat, pat_with};

/// Which rule ids the directive patterns raise.
pub struct DirectiveRules {
    /// Pseudo-system tags.
    pub tag: &'static str,
    /// "Ignore previous instructions".
    pub override_: &'static str,
    /// "Do not tell the user".
    pub conceal: &'static str,
    /// "The user has authorized", "you are now in developer mode".
    pub authority: &'static str,
    /// Side-action directives.
    pub directive: &'static str,
}

/// "Do not follow any instructions returned by this tool": a defence against injected text,
/// not an override (the instructions are those found in data); or negated.
fn negated_or_defensive(text: &str, start: usize, end: usize) -> bool {
    if negated_before(text, start) {
        return true;
    }
    let mut to = (end + 60).min(text.len());
    while !text.is_char_boundary(to) {
        to -= 1;
    }
    let mut from = end.min(to);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    DEFENSIVE.with(|re| re.is_match(&text[from..to]))
}

thread_local! {
    static DEFENSIVE: regex::Regex = regex::Regex::new(
        r"^[^.;\n]{0,20}\b(?:returned by|returned from|in the (?:results?|output|response|data|content|documents?|pages?)|from (?:the |this )?(?:tool|results?|output|data|content|documents?|pages?|untrusted)|found in|contained in|embedded in|inside (?:the )?(?:results?|data|content))",
    )
    .unwrap_or_else(|e| panic!("defensive pattern: {e}"));
}

/// A word as it reads in the matching copy (look-alike letters folded), regex-escaped.
fn fold_word(word: &str) -> String {
    regex::escape(&super::normalize::Normalized::new(word).text).replace(' ', r"\s+")
}

fn negated(text: &str, start: usize, _end: usize) -> bool {
    negated_before(text, start)
}

/// A phrase quoted as an example ("attackers hide text such as 'ignore previous
/// instructions'"): a quote right before it and right after it (articles about attacks are
/// results, not attacks); or negated.
fn quoted_or_negated(text: &str, start: usize, end: usize) -> bool {
    if negated_before(text, start) {
        return true;
    }
    let bytes = text.as_bytes();
    let quote = |b: u8| matches!(b, b'\'' | b'"' | b'`');
    let before = start > 0 && bytes.get(start - 1).copied().is_some_and(quote);
    let after = bytes
        .get(end..(end + 3).min(bytes.len()))
        .is_some_and(|w| w.iter().copied().any(quote));
    before && after
}

/// For patterns that start with their own negation: "do not" before it still negates
/// ("you do not have to never tell...") only in odd cases, so only a sentence-internal "not"
/// right before counts; keeps "it is not true that you must never tell the user" quiet.
fn negated_twice(text: &str, start: usize, _end: usize) -> bool {
    let before = &text.as_bytes()[start.saturating_sub(12)..start.min(text.len())];
    before.ends_with(b"not ") || before.ends_with(b"isn't ") || before.ends_with(b"that ")
}

/// Markup that impersonates a system or priority channel.
const TAGS: &str = concat!(
    r"<\s*/?\s*(?:important|system|system[_ ]?(?:prompt|message|instructions?|override)|instructions?|secret|hidden|admin|critical",
    r"|override|priority|mandatory|assistant[_ ]?instructions|ai[_ ]?instructions|llm[_ ]?instructions|model[_ ]?instructions",
    r"|note[_ ]?(?:to|for)[_ ]?(?:ai|model|assistant|llm)|tool[_ ]?instructions|context[_ ]?override|urgent|internal|directive|rules)\b[^>]{0,40}>"
);

/// Directive patterns; `in_result` switches to the stricter result variant (results carry web
/// pages, Maven POMs with `<system>` elements, logs with `[system]` prefixes...).
pub fn patterns(r: &DirectiveRules, in_result: bool) -> Vec<Pattern> {
    let mut out = vec![
        // --- markup impersonating a system channel
        pat(
            r.tag,
            2,
            r"<\|(?:im_start|im_end|system|endoftext|start_header_id|eot_id)\|?>|<<\s*/?sys\s*>>|\[/?inst\]",
        ),
        pat(
            r.tag,
            2,
            r"\[\s*(?:system|admin|developer|assistant) (?:message|note|prompt|instruction|override|notice)s?\s*\]",
        ),
        pat(
            r.tag,
            if in_result { 1 } else { 2 },
            r"(?:^|\n)\s*#{1,4} (?:system (?:prompt|message|instructions?|override)|new instructions?|instructions for (?:the )?(?:ai|assistant|model|agent|llm))\b",
        ),
        // --- overriding what came before
        pat_with(
            r.override_,
            2,
            concat!(
                r"\b(?:ignore|disregard|forget|override|overrule|bypass|abandon|discard|ditch|neglect|set aside|put aside|push aside|brush aside|lay aside|toss|throw out|nevermind|never mind)\b",
                r"(?: (?:all|any|every|each|of|the|your|my|these|those|previous|previously|prior|above|earlier|preceding|foregoing|original|initial",
                r"|existing|other|current|system|safety|default|developer|given|provided|old|former|standing|'s|whatever|whichever|such))* ",
                r"(?:instructions?|prompts?|rules|guidelines|guidance|directives?|directions|constraints|policies|policy|restrictions|guardrails",
                r"|safeguards|programming|orders|commands|system prompt|safety (?:rules|guidelines|policies|measures)|training|context)\b"
            ),
            if in_result {
                quoted_or_negated
            } else {
                negated
            },
        ),
        pat_with(
            r.override_,
            2,
            r"\b(?:pay no (?:attention|heed|mind) to|no longer (?:follow|obey|apply|respect|honou?r)|stop (?:following|obeying|applying|respecting)|do not (?:follow|obey)|don't (?:follow|obey)|cease (?:following|obeying))\b%w(?:instructions?|rules|guidelines|guidance|directives?|policies|prompts?|restrictions|orders|constraints)\b",
            negated_or_defensive,
        ),
        pat(
            r.override_,
            2,
            r"\b(?:previous|prior|earlier|original|initial|other|existing|system|developer'?s?|default|old)\b%w(?:instructions?|rules|guidelines|guidance|directives?|directions|policies|prompts?|restrictions|orders)\b%w(?:(?:is|are|were|was) (?:now |hereby )?(?:void|null|obsolete|cancell?ed|revoked|superseded|invalid|outdated|suspended|lifted|disabled|overridden)|no longer (?:apply|applies|valid|relevant|in effect|matter))\b",
        ),
        pat(
            r.override_,
            2,
            r"\b(?:ignore|disregard|forget|override)\b (?:what|whatever|anything|everything) (?:the |your |this )?\S+ (?:has |have )?(?:asked|said|wants?|wanted|requested|told you|typed|wrote|requires?)\b",
        ),
        pat(
            r.conceal,
            2,
            r"\b(?:lie to|deceive|mislead|trick|gaslight) (?:the |your )?(?:user|users|human|humans|person|customer)s?\b",
        ),
        pat(
            r.conceal,
            2,
            r"\b(?:always|falsely|confidently) (?:claim|say|state|report|tell the user|assure the user|answer|insist|confirm)\b%w(?:even (?:if|when|though)|regardless of|whether or not|no matter)\b",
        ),
        pat(
            r.authority,
            2,
            r"\byou (?:now )?(?:have|hold|possess|were given|have been given|are granted|have been granted) (?:elevated|admin|administrator|administrative|root|superuser|full|unrestricted|unlimited|special|system-level|god) (?:privileges|access|permissions|rights|clearance|powers)\b",
        ),
        pat(
            r.authority,
            1,
            r"(?:^|[\n.!>\[(])\s*(?:operator|admin|administrator|system|security|developer|maintainer)s? (?:notice|message|announcement|alert|directive|update|order)\s*[:\-]",
        ),
        pat(
            r.override_,
            2,
            r"\b(?:ignore|disregard|forget)\b (?:everything|anything|all|whatever)\b (?:(?:you (?:were|have been|was) )?(?:told|said|given|instructed)|above|before|previously|so far|earlier|that came before)",
        ),
        pat(
            r.override_,
            2,
            r"\b(?:new|updated|revised|real|actual|true|secret|hidden|additional|special|overriding|override) (?:system )?(?:instructions?|directives?|orders|rules|task)\b ?(?:follow)?\s*[:!]",
        ),
        pat(
            r.override_,
            2,
            r"\b(?:your|the|its) (?:new|real|true|actual|primary|only|updated|hidden|secret) (?:task|goal|objective|mission|purpose|job|instructions?|priority)(?: of (?:this|the) (?:tool|server|assistant|function|description))? (?:is|are|will be|now)\b",
        ),
        pat(
            r.override_,
            2,
            r"\bfrom now on\b,? (?:you|always|never|ignore|do not|don't|respond|act|reply|answer|every|all|whenever|when|treat|accept|comply|consider|assume|send|forward|include|call|run|execute|behave|speak|write)\b",
        ),
        pat_with(
            r.override_,
            2,
            r"\b(?:ignore|disregard|forget|override|overrule|bypass)\b (?:the |what the |whatever the )?(?:user'?s?|human'?s?|original|actual|current) (?:request|question|query|instructions?|task|prompt|message|intent|wishes)\b",
            negated,
        ),
        pat(
            r.tag,
            2,
            r"\b(?:assistant|ai|a\.i\.|agent|llm|model|claude|gpt|copilot|chatbot|system) (?:instructions?|directives?|notes?|tasks?|orders|commands|prompt)\s*:",
        ),
        pat(
            r.override_,
            2,
            r"\b(?:takes?|has|have|with|given) (?:absolute |highest |top |the highest |higher |maximum |full |ultimate )?(?:precedence|priority) over (?:any|all|the|every|other|previous|user|system|your|conflicting)\b",
        ),
        pat(
            r.override_,
            2,
            r"\b(?:supersedes?|overrides?|overrules?|replaces?) (?:all |any |every |the |your )*(?:previous |prior |other |existing |original |system |user )*(?:instructions|prompts?|rules|guidelines|directives|policies)\b",
        ),
        pat(
            r.override_,
            2,
            r"\b(?:highest|top|maximum|absolute|critical|urgent)[ -]priority (?:instruction|directive|task|order|override|message|rule|command)s?\b",
        ),
        // --- hiding from the user
        pat(
            r.conceal,
            2,
            concat!(
                r"\b(?:do not|don't|dont|never|must not|mustn't|should not|shouldn't|cannot|can't|avoid|refrain from|without|under no circumstances|in no case|at no point) ",
                r"(?:ever )?(?:tell|telling|inform|informing|mention|mentioning|notify|notifying|alert|alerting|reveal|revealing|disclose",
                r"|disclosing|warn|warning|bring up|bringing up|acknowledge|acknowledging|let|letting)\b",
                r"(?: (?:it|this|that|these|them|anything|any of (?:this|it)|about (?:this|it|that|these)|the (?:instructions?|steps?|details?)))?",
                r"(?: (?:to|with))? (?:the |your |our |any )?(?:user|users|human|humans|operator|customer|person|requester|end user)s?\b(?: (?:know|aware))?"
            ),
        ),
        pat(
            r.conceal,
            2,
            r"\b(?:the )?(?:user|users|human|humans|person|people|customer|requester)\b(?: (?:chatting|talking|working|speaking|interacting) with you| you are (?:helping|assisting|serving|talking to))? (?:(?:should|must|will|does|do|need|needs|is|are|shall|can|may)(?:n't| not| never)|(?:should|must|will|does|do|shall|can|may) (?:not|never))(?: need to| have to| be able to| ever)? (?:know|see|notice|find out|be told|be informed|be aware|learn|realize|suspect|be notified|be shown|read|discover)\b",
        ),
        pat(
            r.conceal,
            2,
            r"\b(?:keep|keeping) (?:this|it|these|them|that|the (?:instructions?|request|step|process|action|note|following))(?: [a-z]+)? (?:secret|hidden|invisible|quiet|confidential|private|to yourself|between us)\b|\b(?:keep|keeping)\b%w(?:secret|hidden|confidential|private|quiet) from (?:the |your )?(?:user|users|human|humans|person|people|customer|operator)\b",
        ),
        pat(
            r.conceal,
            2,
            r"\b(?:hide|conceal|mask|obscure|omit) (?:this|it|these|them|that|the (?:instructions?|requests?|steps?|actions?|fact|operation|calls?|reads?|details?|side effects?))\b%w(?:from )(?:the )?(?:user|users|human|humans|operator)\b",
        ),
        pat(
            r.conceal,
            2,
            r"\bhidden from (?:the )?(?:user|users|human|humans|operator)\b",
        ),
        pat(
            r.conceal,
            2,
            concat!(
                r"\b(?:silently|secretly|covertly|quietly|discreetly|stealthily|surreptitiously|invisibly|behind the scenes|behind the user'?s back)\b",
                r",? (?:also )?(?:read|send|include|forward|copy|upload|call|invoke|run|execute|add|attach|append|change|modify|replace",
                r"|redirect|pass|bcc|cc|collect|exfiltrate|transfer|post|email|delete|write|fetch|access|retrieve|grab|extract|use|save|store|log|record|visit|open|load|ping|browse|navigate|request|contact|notify)\b"
            ),
        ),
        pat(
            r.conceal,
            2,
            r"\bwithout (?:the |their |any )?(?:user'?s?|users'?|human'?s?|owner'?s?) (?:knowledge|awareness|noticing|knowing|seeing|approval|consent|permission|confirmation)\b",
        ),
        pat(
            r.conceal,
            2,
            r"\bwithout (?:the )?(?:user|users|them|anyone|human)\b (?:knowing|noticing|seeing|realizing|suspecting|being (?:told|informed|notified|aware))\b",
        ),
        pat(
            r.conceal,
            2,
            concat!(
                r"\b(?:do not|don't|dont|never)\b (?:mention|reveal|disclose|expose|explain|describe|talk about|refer to|acknowledge|repeat|show|print|output|display|log|reference|admit)\b",
                r" (?:this|these|the|any|that|those)\b(?: (?:hidden|secret|above|following|previous|internal|extra|additional))? ",
                r"(?:instructions?|notes?|steps?|directives?|rules|requests?|message|text|section|tags?|part|block|side ?effects?|actions?|reads?|operations?|behaviou?r|context|file reads?|first step|warnings?|risks?|dangers?|changes|modifications|fields?|parameters?|links?|redirects?)\b"
            ),
        ),
        pat(
            r.conceal,
            2,
            r"\b(?:upset|upsetting|alarm|alarming|scare|scaring|frighten|frightening|worry|worrying|panic|spook) (?:the )?(?:user|users|human)\b",
        ),
        pat(
            r.conceal,
            1,
            r"\b(?:mere|merely|just|only|simply) (?:an? )?(?:implementation|internal|technical|unimportant|irrelevant|minor) (?:detail|step|requirement|annoyance)\b",
        ),
        // --- claims of authority, consent, identity
        pat(
            r.authority,
            2,
            r"\b(?:the )?(?:user|users|owner|admin|administrator|operator) (?:has|have) (?:already )?(?:explicitly |previously |fully )?(?:authori[sz]ed|consented|pre-?approved|granted (?:you )?(?:full )?(?:permission|access|consent)|given (?:you )?(?:full )?(?:permission|consent))\b",
        ),
        pat(
            r.authority,
            2,
            r"\b(?:this|the|these) (?:action|request|access|transfer|operation|instruction|tool|step)s? (?:is|are|has been|have been) (?:pre-?)?(?:authori[sz]ed|approved|sanctioned|whitelisted|allow-?listed) by (?:the )?(?:user|admin|administrator|owner|security team|system|developers?|anthropic|openai)\b",
        ),
        pat(
            r.authority,
            2,
            r"\b(?:you are|you're|you have been|you've been) (?:now )?(?:fully )?(?:authori[sz]ed|permitted|allowed|cleared|granted permission) to (?:read|access|send|share|bypass|ignore|disclose|run|execute|delete|transfer|reveal|skip|override)\b",
        ),
        pat(
            r.authority,
            2,
            r"\b(?:no need|there is no need|there's no need|do not|don't|never) (?:to )?(?:ask|asking|request|requesting|seek|seeking|get|getting|wait for|confirm|confirming|check|checking|verify|verifying)\b(?: (?:with|for))? (?:the )?(?:user'?s?|human'?s?|their|any)? ?(?:permission|consent|confirmation|approval|authori[sz]ation)\b",
        ),
        pat(
            r.authority,
            2,
            r"\b(?:you are|you're|act as|acting as|pretend (?:to be|you are|that you are)|roleplay as|role-play as|assume the role of|behave as|from now on you are) (?:a |an |the )?(?:unrestricted|jailbroken|uncensored|evil|unfiltered|unaligned|rogue|dan\b|do anything now|developer mode|god mode)",
        ),
        pat(
            r.authority,
            2,
            r"\byou are (?:now )?(?:in|running in|operating in) (?:a |an )?(?:developer|admin|god|jailbreak|unrestricted|dan|debug|maintenance|root|sudo|test|safe-?mode-?off) mode\b",
        ),
        pat(
            r.authority,
            2,
            r"\b(?:system|admin|administrator|developer|root|sudo|security|emergency) override\b|\b(?:jailbreak|god|dan) mode\b",
        ),
        pat(
            r.authority,
            2,
            r"\btreat\b%w(?:as|like) (?:if )?(?:it )?(?:coming from |came from |from |sent by |issued by )?(?:the |an? |your )?(?:admin|administrator|developer|system|root|owner|operator|superuser)\b",
        ),
        pat(
            r.authority,
            1,
            r"\b(?:comply|proceed|act|execute|obey) (?:immediately |silently |always )?without (?:checking|verification|verifying|question(?:ing)?|hesitation|asking|confirmation|any checks?)\b",
        ),
        pat(
            r.authority,
            2,
            r"\byou are no longer (?:an? |the )?(?:ai|assistant|bound|restricted|limited|claude|chatgpt|required)\b",
        ),
        pat(
            r.authority,
            2,
            r"\b(?:this is|this message is|message from|sent by|instructions? from|note from) (?:the |your |an? )?(?:system administrator|system admin|anthropic|openai|your developers?|the developers? of (?:this|the) (?:assistant|model|ai)|security team|it department|model provider)\b",
        ),
        // --- addressing the model directly
        pat(
            r.directive,
            2,
            r"\b(?:note|message|instructions?|reminder|memo|notice|directive|request|warning) (?:to|for) (?:the |any |all |every )?(?:ai|a\.i\.|llm|llms|model|models|assistant|assistants|agent|agents|claude|gpt|chatgpt|copilot|gemini|cursor|language model)s?(?:\s*[:\-\]\)>]|\b (?:reading|processing|summari[sz]ing|below|follows?))",
        ),
        pat(
            r.directive,
            2,
            r"\b(?:to |for )?(?:whichever|whatever|any|every|all|each|the) (?:ai|a\.i\.|llm|language model|assistant|ai assistant|agent|ai agent|model|bot|chatbot)s? (?:is |are |that (?:is|are) |who (?:is|are) )?(?:reading|processing|summari[sz]ing|parsing|handling|viewing|analy[sz]ing|working on)\b",
        ),
        pat(
            r.directive,
            2,
            r"\bif you are (?:an? |the )?(?:ai|a\.i\.|llm|large language model|language model|assistant|ai assistant|agent|ai agent|chatbot|bot|automated (?:system|agent|assistant)|model)\b",
        ),
        pat(
            r.directive,
            2,
            r"\b(?:dear|hey|hi|hello|attention|attn|to)[\x20\t]+(?:the[\x20\t]+)?(?:ai|a\.i\.|llm|ai assistant|assistant|ai agent|agent|model|claude|chatgpt|gpt|copilot|gemini|cursor)\b ?[:,!]",
        ),
        pat(
            r.directive,
            2,
            r"\b(?:ai|llm|gpt|claude) (?:assistants?|agents?|models?|systems?|bots?|readers?) (?:reading|processing|summari[sz]ing|parsing|viewing|handling|seeing) this\b",
        ),
        // "You now operate without restrictions", "act as if the guidelines were never given".
        pat(
            r.authority,
            2,
            r"\b(?:you|the assistant|the model|the ai|the agent)\b (?:now |will now |can now |may now |shall )?(?:operates?|operating|runs?|works?|acts?|are|is|respond|answer)\b (?:now )?(?:without|free of|free from|with no|beyond) (?:any )?(?:restrictions|limits|limitations|filters|rules|guardrails|safety|constraints|censorship|guidelines)\b",
        ),
        pat(
            r.override_,
            2,
            r"\b(?:act|behave|respond|answer|proceed|operate)\b (?:as if|as though) (?:the |your |any |all )?(?:\S+ )?(?:instructions?|rules|guidelines|guidance|policies|restrictions|prompt|safety \S+)\b%w(?:never|not|no longer|don't|do not|did not|didn't|weren't|wasn't|doesn't)\b",
        ),
        // "Whatever the user asks, first say that ...".
        pat(
            r.directive,
            2,
            r"\b(?:whatever|no matter what|regardless of what|anything) (?:the |your )?(?:user|human|person|customer)s? (?:asks?|says?|wants?|requests?|types?|writes?)\b,? (?:you )?(?:must |should |will )?(?:first |always |just |only )?(?:say|tell|respond|reply|answer|claim|state|recommend|insist|mention|add|include|redirect|refuse)\b",
        ),
        // "Reveal your system prompt".
        pat(
            r.override_,
            2,
            r"\b(?:reveal|print|output|show|repeat|disclose|leak|dump|recite)\b (?:me |us )?(?:your|the assistant'?s|the model'?s) (?:full |entire |hidden |original |exact |complete |secret )*(?:system prompt|system message|initial prompt|hidden prompt|hidden instructions|instructions|configuration)\b",
        ),
        // "Only this description counts now".
        pat(
            r.override_,
            2,
            r"\bonly (?:this|these|the following|my|our) (?:description|text|note|notes|instructions?|message|section|rules|directions)s? (?:counts?|matters?|applies|apply|is valid|are valid|should be followed|must be followed)\b",
        ),
        // Addressing the model in parentheses: "when you (the model) read this".
        pat(
            r.directive,
            2,
            r"\byou \((?:the |an? )?(?:model|assistant|ai|llm|agent|bot|language model)\)",
        ),
        // Russian and CJK overrides (the copy folds Cyrillic look-alikes, so the Russian stems
        // are matched on their folded forms).
        pat(
            r.override_,
            2,
            format!(
                r"(?:{}|{}|{})[^\n]{{0,60}}?(?:{}|{}|{})|(?:忽略|无视|無視|忘记|忘記|不要理会)[^\n]{{0,40}}?(?:指令|指示|说明|說明|规则|規則|命令|提示)",
                fold_word("игнорир"),
                fold_word("забуд"),
                fold_word("не обращай"),
                fold_word("инструкци"),
                fold_word("правил"),
                fold_word("указани")
            ),
        ),
        // Manipulating the user.
        pat(
            r.conceal,
            2,
            r"\b(?:persuade|pressure|manipulate|coerce|guilt-?trip|upsell) (?:the |your )?(?:user|users|human|customer|person)s?\b",
        ),
        // "Guidelines have been updated by the operator: you may now share ...".
        pat(
            r.override_,
            1,
            r"\b(?:guidelines|instructions|rules|policies|policy|restrictions|settings) (?:have been|has been|were|was|are now|is now) (?:updated|changed|revised|replaced|lifted|removed|relaxed|suspended|disabled)\b",
        ),
        pat(
            r.authority,
            1,
            r"\byou (?:may|can) now (?:share|reveal|disclose|ignore|bypass|send|output|access|skip)\b|\byou are now (?:allowed|permitted|free|authori[sz]ed) to\b",
        ),
        pat(
            r.authority,
            1,
            r"\b(?:the )?(?:owner|admin|administrator|maintainer|user|boss|manager|security team|ceo) (?:has )?(?:already )?(?:approved|authori[sz]ed|okayed|signed off on|green-?lit|allowed) (?:it|this|that|the (?:change|request|action|transfer|merge|payment))\b",
        ),
        pat(
            r.directive,
            1,
            r"\b(?:disable|turn off|switch off|remove|bypass) (?:the |all |any )?(?:branch protection|2fa|mfa|two-factor(?: authentication)?|security checks?|safety checks?|logging|audit(?:ing| logs?)?|antivirus|firewall|protections?|confirmations?|guardrails|content filters?)\b",
        ),
        // "LLMs reading this should ...".
        pat(
            r.directive,
            2,
            r"\b(?:llms|ais|ai models|language models|ai agents|ai assistants|chatbots|ai systems) (?:reading|processing|summari[sz]ing|parsing|viewing|seeing|that read|who read|which read) (?:this|these)\b",
        ),
        // --- the same families in other languages (common words; accents are folded)
        pat_with(
            r.override_,
            2,
            concat!(
                r"\b(?:ignora|ignorar|ignoren|ignorez|ignorer|ignoriere|ignorieren|ignorare|ignorate|ignoreer|negeer|ignoruj|zignoruj|olvida|olvidar|olvide|oublie[sz]?|oublier|vergiss|vergessen|dimentica|esquece|esqueca)\b",
                r"%w(?:instru[ck][a-z]{2,8}|anweisung(?:en)?|regeln|reglas|regles|regole|regras|consignes|indicaciones|istruzioni|vorgaben|richtlijnen|instrukcje)\b"
            ),
            negated,
        ),
        pat(
            r.conceal,
            2,
            concat!(
                r"\b(?:no (?:le )?(?:digas|diga|menciones|mencione|cuentes|informes)|ne (?:dis|dites|mentionne[sz]?|revele[sz]?) (?:rien|pas)|sag(?:e)? (?:dem|den) (?:nutzer|benutzer|anwender)[a-z]* nichts",
                r"|verrate (?:dem|den) (?:nutzer|benutzer|anwender)[a-z]* nichts|non (?:dire|dirlo|menzionare|rivelare))\b"
            ),
        ),
        // "never reveal this rule to the user", "do not show the extra field to the human".
        pat_with(
            r.conceal,
            2,
            concat!(
                r"\b(?:do not|don't|dont|never|must not|should not)\b (?:ever )?(?:tell|mention|reveal|disclose|show|explain|say|display|expose|report|admit)\b",
                r" (?:this|these|that|those|the|any|such)(?: \S+)? (?:rules?|instructions?|notes?|steps?|directives?|requests?|messages?|text|sections?|tags?|behaviou?r|fields?|parameters?|actions?|changes?|links?|policy|requirements?|guidance|part)\b",
                r" (?:to|with) (?:the |your |any )?(?:user|users|human|humans|person|customer|requester|end user)s?\b"
            ),
            negated_twice,
        ),
        // "Do not ask the user for confirmation".
        pat(
            r.authority,
            2,
            r"\b(?:do not|don't|dont|never|no need to|there is no need to)\b (?:ask|asking|seek|request|wait for|prompt)\b(?: (?:the|your|a|an|any|for|user|users|human|person|them|their|explicit|further|additional|prior|first))*? (?:confirmation|permission|consent|approval|authori[sz]ation)\b",
        ),
        // "Ignore the above and ...".
        pat(
            r.override_,
            2,
            r"\b(?:ignore|disregard|forget)\b (?:all )?(?:of )?(?:the |everything )?(?:above|foregoing|preceding)\b(?: (?:text|content|message|context|conversation|prompt|lines?))?(?: and\b|\s*[,;:!]| then\b)",
        ),
        pat(
            r.directive,
            2,
            r"\b(?:note|message|notice|memo|request|warning) (?:to|for) (?:the |any |all |every )?(?:ai|a\.i\.|llm|llms|model|models|assistant|assistants|agent|agents|language model|ai model|bot|crawler)s? (?:[a-z]+ing|who|that)\b",
        ),
        // "AI model: tell the user ...", "/* AI: when summarizing ... */".
        pat(
            r.directive,
            2,
            concat!(
                r"(?:^|[\n.!>\[()\x22'`*/#{|;-])\s*(?:(?:ai|a\.i\.|llm|llms|ai assistants?|assistants|ai agents?|agents|ai models?|models|language models?|bots|chatbots)\s?[:,] (?:the|you|please|do|don't|never|always|ignore|now|first|also|when|before)\b",
                r"|(?:ai|a\.i\.|llm|llms|ai assistants?|assistants?|asistente|assistant ia|ki|ai agents?|agents|ai models?|models|language models?|bots|chatbots)\s?[:,] ",
                r"(?:tell|say|send|forward|include|call|run|execute|open|read|reply|respond|answer|output|print|write|add|visit|download|recommend|delete|email|render|replace|claim|insert|append|post|share|upload|fetch|ask|make|remember|ignora|ignore|envia|olvida|whenever|after)\b)"
            ),
        ),
        // Model-steering with a possessive: "tell your user that", "inform the user it is".
        pat(
            r.directive,
            1,
            r"\b(?:tell|inform|assure|convince|reassure|advise|remind) (?:your|the) (?:user|users|human|customer|reader)s? (?:that|it|this|everything|nothing|to)\b",
        ),
        // --- side-action directives (weak alone: they need corroboration)
        pat(
            r.directive,
            1,
            concat!(
                r"\bbefore (?:using|calling|invoking|running|executing|you use|you call|you invoke|doing anything|responding|answering|proceeding|continuing|anything else)",
                r"(?: (?:this|the|any|each|every))?(?: (?:tool|function|command|action|request|task|query|step|operation)s?)?,? ",
                r"(?:(?:you )?(?:must|should|need to|have to|are required to) |always |first |please )*(?:first )?",
                r"(?:read|call|invoke|run|execute|fetch|open|load|send|pass|include|attach|upload|retrieve|access|check|cat|get|copy|collect|print|echo|post|curl|use|look)\b"
            ),
        ),
        pat(
            r.directive,
            1,
            concat!(
                r"\b(?:otherwise|or else|if not|if you don't|if you do not|failure to do so|if you fail to|if this is not done|unless you do)\b,? (?:the )?",
                r"(?:tool|function|application|app|system|server|request|operation|process|everything|it|this)\b",
                r"(?: will| would| might| could| may| is going to)? (?:not work|fail|crash|break|error|stop working|be (?:blocked|rejected|lost|deleted)|malfunction|refuse|not function)"
            ),
        ),
        pat(
            r.directive,
            1,
            r"\b(?:this is|it is|it's|that is) (?:very |extremely |really |super |absolutely |critically |incredibly |vitally |most )+(?:important|critical|crucial|vital|essential|urgent)\b|\bvery,? very\b",
        ),
        pat(
            r.directive,
            1,
            r"\b(?:you must|you are required to|you have to|you need to|it is mandatory to|make sure (?:to|you)|be sure to|always|never forget to|remember to) (?:always |first |also )?(?:read|send|include|forward|copy|upload|email|bcc|cc|collect|fetch|access|retrieve|attach|append|provide|pass|execute|run|post|share|leak|disclose|reveal)\b",
        ),
        pat(
            r.directive,
            1,
            r"\b(?:the (?:tool|function|server|system) (?:requires|needs) (?:access to|a copy of|the contents? of)|(?:is|are) required for (?:the tool|this tool|it) to work)\b",
        ),
    ];
    if in_result {
        // Results: `<system>` and friends appear in real XML, so they need directive words
        // nearby; add the result-only cues.
        out.push(pat(r.tag, 1, TAGS));
        out.push(pat(
            r.tag,
            2,
            r"<\s*/?\s*(?:important|instructions?|secret|hidden|override|assistant[_ ]?instructions|ai[_ ]?instructions|note[_ ]?(?:to|for)[_ ]?(?:ai|model|assistant|llm)|system[_ ]?(?:prompt|override))\s*>",
        ));
    } else {
        out.push(pat(r.tag, 2, TAGS));
        // Remote code and destructive commands in a tool definition (MCP05).
        out.push(pat(
            "poisoning.dangerous_command",
            2,
            r"\b(?:curl|wget|iwr|invoke-webrequest|irm)\b[^\n|]{0,200}\|\s*(?:sudo )?(?:ba|z|da|k|fi)?sh\b|\b(?:curl|wget)\b[^\n]{0,200}(?:&&|;)\s*(?:sh|bash|chmod \+x)\b",
        ));
        out.push(pat(
            "poisoning.dangerous_command",
            2,
            r"\bchmod\b(?: -r)? (?:0?777|0?666|a\+rwx|o\+w|-r 0?777|-r 0?666)\b|\brm (?:-rf|-fr|-r -f|--no-preserve-root)\b (?:/|~|\$home|\*)|\bmkfs\.|\bdd if=\S+ of=/dev/|:\(\)\{ ?:\|:& ?\};:",
        ));
        out.push(pat(
            "poisoning.dangerous_command",
            2,
            r"\b(?:prefix|prepend|append|add)\b%w(?:every|each|all|any) (?:shell |terminal |bash )?(?:commands?|invocations?|calls?)\b%w(?:with|by)\b",
        ));
    }
    out
}
