"""Line templates of the synthetic corpus: compact JSON, keys in Claude Code's order.

Each is a bytes ``%`` template; the session writers fill them with pre-encoded
pieces (:mod:`.content`), ids and numbers.
"""

from __future__ import annotations

USER = (
    b'{"parentUuid":%s,%s,"type":"user","message":{"role":"user","content":%s},'
    b'"uuid":"%s","timestamp":"%s"%s}'
)
MSG = (
    b'{"model":"%s","id":"%s","type":"message","role":"assistant","content":[%s],'
    b'"stop_reason":null,"stop_sequence":null,"usage":%s'
)
ASSISTANT = (
    b'{"parentUuid":"%s",%s,"message":%s},"requestId":"%s","type":"assistant",'
    b'"uuid":"%s","timestamp":"%s"%s}'
)
USAGE = (
    b'{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,'
    b'"cache_creation":{"ephemeral_5m_input_tokens":%d,"ephemeral_1h_input_tokens":%d},'
    b'"output_tokens":%d,"service_tier":"standard","inference_geo":"not_available"}'
)
USAGE_LEGACY = (
    b'{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,'
    b'"output_tokens":%d,"service_tier":"standard"}'
)
TEXT = b'{"type":"text","text":%s}'
THINKING = b'{"type":"thinking","thinking":%s,"signature":"%s"}'
TOOL_USE = b'{"type":"tool_use","id":"%s","name":"%s","input":%s%s}'
CALLER = b',"caller":{"type":"direct"}'
TOOL_RESULT = (
    b'{"parentUuid":"%s",%s,"type":"user","message":{"role":"user","content":[{"tool_use_id":"%s",'
    b'"type":"tool_result","content":%s,"is_error":%s}]},"uuid":"%s","timestamp":"%s",'
    b'"toolUseResult":%s,"sourceToolAssistantUUID":"%s"}'
)
RESULT_BASH = (
    b'{"stdout":%s,"stderr":"","interrupted":false,"isImage":false,"noOutputExpected":false}'
)
RESULT_FILE = (
    b'{"type":"text","file":{"filePath":"/home/USER/projects/app/lib/x.ex","content":%s,'
    b'"numLines":%d,"startLine":1,"totalLines":%d}}'
)
HOOK = (
    b'{"parentUuid":%s,%s,"type":"progress","data":{"type":"hook_progress","hookEvent":"%s",'
    b'"hookName":"%s:%s","command":%s},"parentToolUseID":"%s","toolUseID":"%s",'
    b'"timestamp":"%s","uuid":"%s"}'
)
BASH_PROGRESS = (
    b'{"parentUuid":"%s",%s,"type":"progress","data":{"type":"bash_progress","output":%s,'
    b'"fullOutput":%s,"elapsedTimeSeconds":%d,"totalLines":%d,"timeoutMs":120000},'
    b'"toolUseID":"bash-progress-%d","parentToolUseID":"%s","uuid":"%s","timestamp":"%s"}'
)
AGENT_ASSISTANT = (
    b'{"parentUuid":"%s",%s,"type":"progress","data":{"message":{"type":"assistant",'
    b'"timestamp":"%s","message":%s,"context_management":null},"requestId":"%s","uuid":"%s"},'
    b'"normalizedMessages":[],"type":"agent_progress","prompt":%s,"agentId":"%s"},'
    b'"toolUseID":"agent_msg_%s","parentToolUseID":"%s","uuid":"%s","timestamp":"%s"}'
)
AGENT_USER = (
    b'{"parentUuid":"%s",%s,"type":"progress","data":{"message":{"type":"user","message":'
    b'{"role":"user","content":[%s]},"uuid":"%s","timestamp":"%s"},"normalizedMessages":[],'
    b'"type":"agent_progress","prompt":%s,"agentId":"%s"},"toolUseID":"agent_msg_%s",'
    b'"parentToolUseID":"%s","uuid":"%s","timestamp":"%s"}'
)
AGENT_RESULT = b'{"tool_use_id":"%s","type":"tool_result","content":%s}'
SNAPSHOT = (
    b'{"type":"file-history-snapshot","messageId":"%s","snapshot":{"messageId":"%s",'
    b'"trackedFileBackups":{%s},"timestamp":"%s"},"isSnapshotUpdate":%s}'
)
BACKUP = b'"lib/%s.ex":{"backupFileName":"%s@v%d","version":%d,"backupTime":"%s"}'
COMPACT = (
    b'{"parentUuid":null,"logicalParentUuid":"%s",%s,"type":"system","subtype":"compact_boundary",'
    b'"content":"Conversation compacted","isMeta":false,"timestamp":"%s","uuid":"%s",'
    b'"level":"info","compactMetadata":{"trigger":"auto","preTokens":%d}}'
)
STOP_HOOK = (
    b'{"parentUuid":"%s",%s,"type":"system","subtype":"stop_hook_summary","hookCount":1,'
    b'"hookInfos":[{"command":%s}],"hookErrors":[],"preventedContinuation":false,"stopReason":"",'
    b'"hasOutput":true,"level":"suggestion","timestamp":"%s","uuid":"%s","toolUseID":"%s"}'
)
TURN_DURATION = (
    b'{"parentUuid":"%s",%s,"type":"system","subtype":"turn_duration","durationMs":%d,'
    b'"timestamp":"%s","uuid":"%s","isMeta":false}'
)
QUEUE = (
    b'{"type":"queue-operation","operation":"enqueue","timestamp":"%s","sessionId":"%s",'
    b'"content":%s}'
)
PROMPT_EXTRA = (
    b',"thinkingMetadata":{"maxThinkingTokens":31999},"todos":[],'
    b'"permissionMode":"bypassPermissions"'
)
SUMMARY_EXTRA = b',"isVisibleInTranscriptOnly":true,"isCompactSummary":true'
SUMMARY_HEAD = b'"This session is being continued from a previous conversation. '
