// Page texts in Simplified Chinese (the default) and English. Choice kept in localStorage.
const TEXTS = {
  zh: {
    app: "三个课堂", login: "登录", logout: "退出", username: "用户名", password: "密码",
    admin_token: "或者：管理员令牌（首次使用）", wrong_login: "用户名或密码错误", lang: "English",
    teacher_title: "主讲教师", today: "今日课程", start_broadcast: "开始上课", stop_broadcast: "结束直播",
    share_screen: "共享课件（屏幕）", stop_screen: "停止共享", on_air: "直播中", off_air: "未开播", replay_on_air: "录播课", replay_waiting: "录播课将按时开始", replay_ended: "本节录播课已播完",
    classrooms: "接收教室", call_on: "点名发言", call_on_all: "全体可听", end_talkback: "结束发言",
    talkback_now: "正在发言", hand_up: "举手", wants_to_speak: "请求发言", quality: "质量",
    messages: "消息", no_lessons: "今天没有课程", window_not_open: "未到上课时间", window_open: "可以进入",
    preview: "本地预览", talkback_view: "发言教室", no_talkback: "点名后，这里显示发言教室的画面",
    classroom_title: "接收教室", waiting_teacher: "等待老师开始上课", waiting_lesson: "等待下一节课",
    next_lesson: "下一节课", no_more_lessons: "今天没有更多课程", connecting: "正在连接…",
    reconnecting: "网络中断，正在重新连接…", fullscreen: "全屏", raise_hand: "举手", lower_hand: "放下手",
    request_talk: "请求发言", cancel_talk: "取消发言", send: "发送", message_to_teacher: "给主讲老师留言",
    enrolling: "正在登记本教室…", enrolled: "本机已登记为接收教室", not_enrolled: "本机尚未登记。请用管理员提供的登记链接打开本页。",
    you_are_speaking: "老师请本教室发言", start_sound: "点击开始（开启声音）", lesson: "课程", kind: "类型",
    refused: "无法进入课堂", observer: "观摩", subject: "学科", time: "时间", status: "状态",
    admin_title: "管理", tab_import: "导入", tab_calendar: "日历", tab_reports: "报表", tab_accounts: "账号",
    tab_enrol: "教室登记链接", tab_audit: "审计记录", tab_live: "直播",
    tab_review: "录像审查", tab_replays: "录播", review_list: "待审查的录像", recordings_review: "录像及审查状态",
    recording_no: "录像", review_state: "审查", decision: "审查决定", review_pending: "待审查",
    review_approved: "已批准", review_refused: "未通过", use_replay: "录播到其他教室", use_model: "案例观摩",
    approve: "批准", refuse: "不予批准", watch: "观看", all: "全部", reviewed_by: "审查人",
    schedule_replay: "安排录播", receiving_ids: "接收教室编号（可多个）", start_time: "开始", end_optional: "结束（可不填）",
    replay_scheduled: "已安排录播", none_approved: "没有经审查批准录播的录像",
    replay_hint: "录播按接收教室的课表占用教室，不占用原主讲教师和主讲教室；按接收学校的开课率计入，默认不计入原主讲教师工作量。",
    reviewers: "审查员（教研员）", county_id: "区县编号", granted_by: "授权人", reviewer_name: "教研员", receiving_classrooms: "接收教室（可多选，按住 Ctrl）", administrator: "管理员",
    grant_reviewer: "设为审查员", recording_policy: "区县录像策略", retention_days: "保留天数", quota_mb: "磁盘配额（MB）",
    replay_credits_lead: "录播计入原主讲教师工作量", save: "保存", saved: "已保存",
    import_file: "课表（Excel 或 CSV）", dry_run: "只检查，不导入", do_import: "导入", import_ok: "导入成功",
    import_directory: "名册：区县、学校、教室、教师、研修共同体、学期与假期（Excel 或 CSV）",
    import_evidence: "出勤证据（录播系统导出的 Excel 或 CSV）", settle_after: "导入后结算", download_template: "下载模板",
    tab_settle: "待补证据", tab_corrections: "更正", how_evidence: "按证据结算", how_delivered: "已完成",
    how_missed: "未完成", settle: "结算", settled: "已结算", none_awaiting: "没有待补证据的课程", hours: "课时",
    lesson_ids: "课程编号（可多个）", correct: "更正", corrected: "已更正", correct_attendance: "更正教室出勤",
    classroom_id: "教室编号", attended: "出勤", absent: "缺勤", before: "更正前", after: "更正后", filter: "筛选",
    kind_status: "状态", kind_settlement: "补录结算", kind_attendance: "出勤", kind_cancel: "取消",
    import_failed: "有错误，未导入任何数据", line: "行", reason: "原因", code: "代码",
    week_prev: "上一周", week_next: "下一周", report_teachers: "骨干教师开课进度", report_schools: "学校周均开课",
    report_workload: "教师工作量（折算课时）", semester: "学期", download_xlsx: "下载 Excel",
    create: "创建", role: "角色", teacher_id: "教师编号", disabled: "停用", enable: "启用", disable: "停用",
    classroom: "教室", create_link: "生成登记链接", revoke: "撤销", copy: "复制", link: "链接", enrolled_device: "已登记设备",
    actor: "操作者", action: "动作", outcome: "结果", address: "地址", at: "时间",
    alerts_firing: "正在告警", acknowledge: "认领", acked_by: "处理人", severity_critical: "严重", severity_warning: "警告",
    classrooms_connected: "接收端在线", loop_lag: "事件循环延迟", kbps_col: "码率 kbps", freezes: "卡顿", last_10_min: "近10分钟",
    lead_on_air: "直播中", lead_interrupted: "主讲端中断", lead_off_air: "未开播", node: "节点", worker: "进程", lead_end: "主讲端",
    kind_specialised: "专递课堂", kind_master: "名师课堂", kind_famous_school: "名校网络课堂",
    level_excellent: "优", level_good: "良", level_fair: "中", level_poor: "差", level_lost: "断",
    reason_loss: "丢包", reason_delay: "延迟高", reason_freeze: "画面卡顿", reason_waiting_for_keyframe: "等待关键帧", reason_low_fps: "帧率低", reason_link_lost: "断线",
    alert_log: "告警记录", fired_at: "发生时间", severity: "级别", alert: "告警", cleared_at: "恢复时间", still_firing: "仍在告警",
    nodes_tab: "节点", node_placements: "教室分配记录（最新在前）", node_reason: "原因", node_move: "移到此节点", node_no_placements: "暂无接收教室分配到节点", node: "节点", node_role: "角色", node_place: "地区 / 区县", node_subs: "订阅 / 容量", node_egress: "出口 Mbit/s",
    node_heartbeat: "心跳", node_lag: "事件循环延迟 ms", node_lessons: "本节点的课", node_no_lessons: "无", node_this: "本机", node_role_origin: "中心", node_role_edge: "边缘",
    node_registry: "注册中心", node_one_machine: "单机",
    node_registry_down: "Redis 不可用：在播课程照常进行，新加入的教室分配到仍在线的节点；下表为上次读取的节点信息，读取于", node_jobs_here: "定时任务在本机运行", node_jobs_elsewhere: "定时任务由其他节点运行",
    history_tab: "课程回看", attendance_timeline: "出勤时间线", bitrate_chart: "码率（kbps）", quality_chart: "质量分（1–5）",
    seg_present: "在线", seg_dropped: "断线", seg_left: "已离开", seg_interrupted: "服务器中断", seg_closed: "结束", seg_on_air: "直播中", seg_off_air: "未直播", seg_absent: "未进入",
    open: "查看", date: "日期", alerts: "告警", bandwidth_title: "带宽报表", from: "从", to: "到", show: "查询", slot: "时段",
    peak_up: "上行峰值", peak_down: "下行峰值", mean_down: "下行平均", capacity: "带宽容量", share: "峰值占比", county: "区县", school: "学校",
    per_county: "按区县", per_school: "按学校", per_slot: "按时段", live: "实时", connecting: "连接中…", stream_live: "实时更新中",
    stream_down: "与服务器断开，重连中", sound_on: "提示音：开", sound_off: "提示音：关",
    status_scheduled: "未开始", status_open: "可进入", status_live: "直播中", status_delivered: "已完成", status_missed: "未上课",
    status_cancelled: "已取消", status_awaiting_evidence: "待补证据",
    tech_title: "技术支持", live_lessons: "正在直播的课程", participants: "参与者", none: "无",
    minutes: "分钟", lead_minutes: "主讲直播分钟", attendance: "出勤分钟",
    "reason.missing_token": "没有访问凭证", "reason.malformed": "访问凭证无效", "reason.bad_signature": "访问凭证不是本系统签发的",
    "reason.expired": "访问凭证已过期", "reason.not_yet_valid": "还没到这节课的进入时间", "reason.revoked": "访问凭证已被撤销",
    "reason.wrong_type": "这个凭证不能用于进入课堂", "reason.wrong_lesson": "这个凭证属于另一节课",
    "reason.not_entitled": "本教室/本人无权进入这节课", "reason.window_closed": "这节课的时间已结束",
    "reason.window_not_open": "还没到这节课的进入时间", "reason.lesson_cancelled": "这节课已取消",
    "reason.device_replaced": "本教室已在另一台设备上登记，本机已失效", "reason.rate_limited": "尝试次数过多，请稍后再试",
    "reason.unknown_lesson": "没有这节课", "reason.not_allowed_to_publish": "观摩者不能发布音视频",
    "reason.replaced": "本教室已在另一处连接", "reason.kicked": "已被移出课堂", "reason.bad_sdp": "媒体协商失败",
    "reason.media_refused": "媒体服务器拒绝了连接", "reason.bad_credentials": "用户名或密码错误",
    teacher: "主讲老师", courseware: "课件", network_down: "网络中断", network_retrying: "本教室的网络连接中断了，正在自动重新连接，请稍候…",
    network_down_short: "网络中断", teacher_interrupted: "主讲老师的网络中断，正在等待恢复…",
    media_stuck: "无法建立音视频连接（可能是防火墙拦截了 UDP 端口），正在重试…",
    connection: "连接", no_public_url: "尚未配置对外访问地址：此链接使用的是你打开本页的地址 {origin}。请用 classroom serve --public-url 设置学校能访问的地址。", link_ok: "正常", link_unknown: "状态未知", link_lost: "已断线", link_absent: "未进入", link_left: "已离开",
    rtt: "延迟", loss: "丢包", fps: "帧率", live_now: "正在直播", recording: "● 录制中", player_title: "录像回放", search: "查询", date_from: "从", date_to: "到", grade: "年级", swap_views: "切换主画面（课件/教师）", recording_unplayable: "无法播放此录像（文件缺失或已损坏），请联系管理员", no_recordings: "没有符合条件的录像", lesson_time: "上课时间", duration: "时长", state: "状态", rec_state_ready: "可回放", rec_state_recording: "录制中", rec_state_failed: "录制失败", play: "播放", recording_corrupt: "录像文件已损坏", recording_stopped: "录制已停止（服务器磁盘或写入故障），直播不受影响", media_failed: "无法建立音视频连接，请检查网络或防火墙（UDP 端口）",
    "reason.account_disabled": "管理员已停用此账号", "reason.password_reset": "密码已被重置，请重新登录",
    "reason.credential_changed": "账号已变更，请重新登录", "reason.device_withdrawn": "本教室的登记已被撤销，本机已失效",
  },
  en: {
    app: "Three Classrooms", login: "Log in", logout: "Log out", username: "Username", password: "Password",
    admin_token: "Or: administrator token (first use)", wrong_login: "Wrong username or password", lang: "中文",
    teacher_title: "Lead teacher", today: "Today's lessons", start_broadcast: "Start lesson", stop_broadcast: "Stop broadcasting",
    share_screen: "Share courseware (screen)", stop_screen: "Stop sharing", on_air: "On air", off_air: "Off air", replay_on_air: "Recorded lesson", replay_waiting: "The recorded lesson starts on time", replay_ended: "The recorded lesson has ended",
    classrooms: "Receiving classrooms", call_on: "Call on", call_on_all: "Everyone hears", end_talkback: "End talk-back",
    talkback_now: "Speaking", hand_up: "Hand raised", wants_to_speak: "Asks to speak", quality: "Quality",
    messages: "Messages", no_lessons: "No lessons today", window_not_open: "Not yet open", window_open: "Open now",
    preview: "Local preview", talkback_view: "Called classroom", no_talkback: "Call on a classroom to see it here",
    classroom_title: "Receiving classroom", waiting_teacher: "Waiting for the teacher", waiting_lesson: "Waiting for the next lesson",
    next_lesson: "Next lesson", no_more_lessons: "No more lessons today", connecting: "Connecting…",
    reconnecting: "Connection lost, reconnecting…", fullscreen: "Full screen", raise_hand: "Raise hand", lower_hand: "Lower hand",
    request_talk: "Ask to speak", cancel_talk: "Cancel", send: "Send", message_to_teacher: "Message to the lead teacher",
    enrolling: "Enrolling this classroom…", enrolled: "This PC is enrolled as a receiving classroom",
    not_enrolled: "This PC is not enrolled. Open this page with the enrolment link from your administrator.",
    you_are_speaking: "The teacher has called on this classroom", start_sound: "Click to start (sound on)", lesson: "Lesson", kind: "Kind",
    refused: "Cannot enter the lesson", observer: "Observer", subject: "Subject", time: "Time", status: "Status",
    admin_title: "Administration", tab_import: "Import", tab_calendar: "Calendar", tab_reports: "Reports", tab_accounts: "Accounts",
    tab_enrol: "Classroom enrolment links", tab_audit: "Audit", tab_live: "Live",
    tab_review: "Review recordings", tab_replays: "Replays", review_list: "Recordings to review", recordings_review: "Recordings and their review",
    recording_no: "Recording", review_state: "Review", decision: "Decision", review_pending: "Pending",
    review_approved: "Approved", review_refused: "Refused", use_replay: "replay to other classrooms", use_model: "model lesson",
    approve: "Approve", refuse: "Refuse", watch: "Watch", all: "All", reviewed_by: "Reviewer",
    schedule_replay: "Schedule a replay", receiving_ids: "Receiving classroom ids", start_time: "Start", end_optional: "End (optional)",
    replay_scheduled: "Replay scheduled", none_approved: "No recording is approved for replay",
    replay_hint: "A replay holds its receiving classrooms, not the recorded lesson's teacher or classroom; it counts for the receiving schools' opening rate and, by default, not for the teacher's workload.",
    reviewers: "Reviewers", county_id: "County id", granted_by: "Granted by", reviewer_name: "Reviewer", receiving_classrooms: "Receiving classrooms (several with Ctrl)", administrator: "Administrator",
    grant_reviewer: "Make reviewer", recording_policy: "County recording policy", retention_days: "Retention (days)", quota_mb: "Disk quota (MB)",
    replay_credits_lead: "Replays credit the recorded lesson's teacher", save: "Save", saved: "Saved",
    import_file: "Timetable (Excel or CSV)", dry_run: "Check only", do_import: "Import", import_ok: "Imported",
    import_directory: "Directory: counties, schools, classrooms, teachers, communities, semesters and holidays (Excel or CSV)",
    import_evidence: "Attendance evidence (a recording system's Excel or CSV export)", settle_after: "Settle after import",
    download_template: "Download template", tab_settle: "Awaiting evidence", tab_corrections: "Corrections",
    how_evidence: "From evidence", how_delivered: "Delivered", how_missed: "Missed", settle: "Settle", settled: "Settled",
    none_awaiting: "No lesson awaits evidence", hours: "Lesson hours", lesson_ids: "Lesson numbers (one or many)",
    correct: "Correct", corrected: "Corrected", correct_attendance: "Correct a classroom's attendance",
    classroom_id: "Classroom #", attended: "Attended", absent: "Absent", before: "Before", after: "After", filter: "Filter",
    kind_status: "Status", kind_settlement: "Late settlement", kind_attendance: "Attendance", kind_cancel: "Cancellation",
    import_failed: "Errors found; nothing was imported", line: "Line", reason: "Reason", code: "Code",
    week_prev: "Previous week", week_next: "Next week", report_teachers: "Backbone teachers' progress", report_schools: "Schools' weekly average",
    report_workload: "Teachers' weighted workload (hours)", semester: "Semester", download_xlsx: "Download Excel",
    create: "Create", role: "Role", teacher_id: "Teacher id", disabled: "Disabled", enable: "Enable", disable: "Disable",
    classroom: "Classroom", create_link: "Create enrolment link", revoke: "Revoke", copy: "Copy", link: "Link", enrolled_device: "Enrolled device",
    actor: "Actor", action: "Action", outcome: "Outcome", address: "Address", at: "Time",
    alerts_firing: "Alerts firing", acknowledge: "Acknowledge", acked_by: "Taken by", severity_critical: "Critical", severity_warning: "Warning",
    classrooms_connected: "Classrooms connected", loop_lag: "loop lag", kbps_col: "kbps", freezes: "Freezes", last_10_min: "Last 10 min",
    lead_on_air: "On air", lead_interrupted: "Lead interrupted", lead_off_air: "Off air", node: "node", worker: "worker", lead_end: "Lead",
    kind_specialised: "Specialised", kind_master: "Master teacher", kind_famous_school: "Famous school",
    level_excellent: "excellent", level_good: "good", level_fair: "fair", level_poor: "poor", level_lost: "lost",
    reason_loss: "loss", reason_delay: "high delay", reason_freeze: "freezes", reason_waiting_for_keyframe: "waiting for a keyframe", reason_low_fps: "low frame rate", reason_link_lost: "link lost",
    alert_log: "Alert log", fired_at: "Fired", severity: "Severity", alert: "Alert", cleared_at: "Cleared", still_firing: "still firing",
    nodes_tab: "Nodes", node_placements: "Where classrooms were placed (newest first)", node_reason: "Reason", node_move: "Move there", node_no_placements: "No receiving classroom placed yet", node: "Node", node_role: "Role", node_place: "Region / county", node_subs: "Subscriptions / capacity", node_egress: "Egress Mbit/s",
    node_heartbeat: "Heartbeat", node_lag: "Loop lag ms", node_lessons: "Lessons here", node_no_lessons: "none", node_this: "this node", node_role_origin: "origin", node_role_edge: "edge",
    node_registry: "Registry", node_one_machine: "one machine",
    node_registry_down: "Redis is unavailable: lessons on air go on and new classrooms go to the nodes still live; the nodes below are as last read, at", node_jobs_here: "timed jobs run on this node", node_jobs_elsewhere: "timed jobs run on another node",
    history_tab: "Lesson history", attendance_timeline: "Attendance timeline", bitrate_chart: "Bitrate (kbps)", quality_chart: "Quality (1–5)",
    seg_present: "present", seg_dropped: "dropped", seg_left: "left", seg_interrupted: "server interrupted", seg_closed: "ended", seg_on_air: "on air", seg_off_air: "off air", seg_absent: "absent",
    open: "Open", date: "Date", alerts: "Alerts", bandwidth_title: "Bandwidth report", from: "From", to: "To", show: "Show", slot: "Time slot",
    peak_up: "Peak up", peak_down: "Peak down", mean_down: "Mean down", capacity: "Capacity", share: "Peak share", county: "County", school: "School",
    per_county: "Per county", per_school: "Per school", per_slot: "Per time slot", live: "Live", connecting: "Connecting…", stream_live: "Live",
    stream_down: "Disconnected, reconnecting", sound_on: "Sound: on", sound_off: "Sound: off",
    status_scheduled: "Scheduled", status_open: "Open", status_live: "Live", status_delivered: "Delivered", status_missed: "Missed",
    status_cancelled: "Cancelled", status_awaiting_evidence: "Awaiting evidence",
    tech_title: "Technician", live_lessons: "Live lessons", participants: "Participants", none: "None",
    minutes: "min", lead_minutes: "Lead on-air minutes", attendance: "Attended minutes",
    "reason.missing_token": "No access token", "reason.malformed": "The access token is not valid", "reason.bad_signature": "The access token was not issued by this server",
    "reason.expired": "The access token has expired", "reason.not_yet_valid": "The lesson's window is not open yet", "reason.revoked": "The access token was revoked",
    "reason.wrong_type": "This token does not admit to a lesson", "reason.wrong_lesson": "This token is for another lesson",
    "reason.not_entitled": "Not entitled to this lesson", "reason.window_closed": "The lesson's window has closed",
    "reason.window_not_open": "The lesson's window is not open yet", "reason.lesson_cancelled": "The lesson was cancelled",
    "reason.device_replaced": "Another device was enrolled for this classroom", "reason.rate_limited": "Too many attempts; wait a minute",
    "reason.unknown_lesson": "No such lesson", "reason.not_allowed_to_publish": "An observer may not publish audio or video",
    "reason.replaced": "This classroom connected from elsewhere", "reason.kicked": "Removed from the lesson", "reason.bad_sdp": "Media negotiation failed",
    "reason.media_refused": "The media server refused the connection", "reason.bad_credentials": "Wrong username or password",
    teacher: "Teacher", courseware: "Courseware", network_down: "Network down", network_retrying: "This classroom's network connection dropped. Reconnecting by itself, please wait…",
    network_down_short: "Network down", teacher_interrupted: "The teacher's connection dropped; waiting for it to return…",
    media_stuck: "Cannot set up audio and video (a firewall may block the UDP ports); retrying…",
    connection: "Connection", no_public_url: "No public address is configured: this link uses the address you opened this page with, {origin}. Set the address schools reach with classroom serve --public-url.", link_ok: "OK", link_unknown: "Unknown", link_lost: "Dropped", link_absent: "Not joined", link_left: "Left",
    rtt: "RTT", loss: "loss", fps: "fps", live_now: "Live now", recording: "● Recording", player_title: "Recordings", search: "Search", date_from: "From", date_to: "To", grade: "Grade", swap_views: "Swap views (courseware / teacher)", recording_unplayable: "This recording cannot be played (its file is missing or damaged): tell an administrator", no_recordings: "No recordings match", lesson_time: "Lesson time", duration: "Duration", state: "State", rec_state_ready: "ready", rec_state_recording: "recording", rec_state_failed: "failed", play: "Play", recording_corrupt: "The recording's file is damaged", recording_stopped: "Recording stopped (server disk or write failure); the live lesson goes on", media_failed: "Cannot set up audio and video: check the network or firewall (UDP ports)",
    "reason.account_disabled": "An administrator disabled this account", "reason.password_reset": "The password was reset: log in again",
    "reason.credential_changed": "The account changed: log in again", "reason.device_withdrawn": "This classroom's enrolment was withdrawn",
  },
};

export function lang() {
  const chosen = localStorage.getItem("lang");
  return chosen === "en" ? "en" : "zh";
}

export function t(key) {
  return TEXTS[lang()][key] ?? TEXTS.zh[key] ?? key;
}

export function reasonText(code, fallback) {
  const key = `reason.${code}`;
  const text = TEXTS[lang()][key];
  return text ?? fallback ?? code;
}

export function applyTexts(root = document) {
  document.documentElement.lang = lang() === "en" ? "en" : "zh-CN";
  for (const node of root.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  for (const node of root.querySelectorAll("[data-t-placeholder]")) node.placeholder = t(node.dataset.tPlaceholder);
}

export function languageButton(onChange) {
  const button = document.createElement("button");
  button.className = "lang";
  button.id = "lang";
  button.textContent = t("lang");
  button.addEventListener("click", () => {
    localStorage.setItem("lang", lang() === "en" ? "zh" : "en");
    button.textContent = t("lang");
    applyTexts();
    if (onChange) onChange();
  });
  return button;
}
