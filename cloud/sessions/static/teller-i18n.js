// UI strings of the teller app and of the supervisor's watch page in Chinese (default) and
// English, registered with the shared i18n (/ui/i18n.js: current language, then zh, then the
// key). Form texts pushed to the customer's screen stay Chinese whatever the teller reads.
// No DOM here: tests import this module in node to check both languages have every key.

export const STRINGS = {
  zh: {
    brand: "村村通 · 远程柜员工作台", brandSub: "远程视频银行 · 柜员坐席", langSwitch: "English",
    username: "用户名", password: "密码", login: "登录", logout: "退出", loginTitle: "柜员登录",
    loginHint: "使用柜员账号登录。", available: "示闲", break: "小休", offline: "离线", busy: "通话中", "wrap-up": "整理中",
    stateLabel: "坐席状态", idleAvailable: "示闲中，等待客户来电…", idleBreak: "小休中，不会收到来电",
    idleOffline: "已离线。选择“示闲”开始接听", idleOrphan: "页面已重新载入，本次通话的视频无法恢复，请点“结束办理”。", rejoining: "正在恢复通话……", incoming: "客户来电", accept: "接听", decline: "拒绝",
    secondsLeft: "秒后自动转给其他柜员", elderly: "老年客户", business: "业务", language: "语言", terminal: "终端",
    customer: "客户信息", name: "姓名", idNumber: "身份证号", waited: "等待", seconds: "秒",
    idPhoto: "证件照片", idPhotoNone: "读证后显示（仅通话中显示，不保存）", idPhotoMismatch: "照片与终端签名不符，未显示",
    idRead: "身份证", idReadFirst: "客户排队前已刷证（终端签名已核验）", useIdRead: "采用排队前所刷身份证",
    liveness: "活体检测", livenessPending: "等待终端结果", passed: "通过", notPassed: "未通过", score: "得分",
    history: "历史", noCustomer: "暂无客户", workflow: "办理步骤", stepDone: "完成", needsSupervisor: "需主管授权（第二人）",
    waitingSupervisor: "等待主管授权…", workflowElsewhere: "本会话的办理步骤由转出柜员登记（转办客户）。", needsLiveness: "等待活体结果", needsSignature: "先请客户签名",
    needsVoucher: "先拍摄凭证", failStep: "不通过", askTerminal: "请终端执行", runCheck: "联网核查",
    byTerminal: "由终端执行并签名，结果核验后自动通过", byCloud: "云端用终端签名的身份证信息联网核查", asked: "已请终端执行，等待结果…",
    checking: "正在联网核查…", overridden: "主管越权通过", tools: "客户屏操作", pushForm: "推送表单", formConfirm: "确认办理",
    formRisk: "风险告知", formCard: "选择卡片", captureId: "拍身份证", captureVoucher: "拍凭证", askSign: "请客户签名",
    screenSync: "同步客户屏", screenTitle: "标题", screenText: "显示内容", send: "发送", replies: "客户回复",
    answerTo: "回复", signature: "电子签名", documents: "证件与凭证", id_card: "身份证", voucher: "凭证",
    transfer: "转办", hangUp: "挂断", endCall: "结束办理", outcome: "办理结果", outcomeDone: "办结",
    outcomeNotDone: "未办结", outcomeTransfer: "转办", notes: "备注", notesPh: "办理情况、客户诉求等",
    transferTo: "转至业务", transferLanguage: "语言", confirm: "确认", cancel: "取消", wrapUp: "事后整理",
    wrapLeft: "秒后自动结束整理", wrapDone: "完成整理", outcomeSaved: "办理结果已登记",
    recordOutcome: "登记办理结果", callTime: "通话时长", selfView: "本人", remoteWaiting: "等待客户视频…",
    yes: "是", no: "否", sent: "已发送", formSent: "表单已推送：", signRequested: "已请客户签名",
    captureRequested: "已请终端拍摄：", offerWithdrawn: "来电已撤回：", guestJoined: "主管加入旁听：", guestLeft: "主管已离开：", watching: "旁听中：", callEnded: "通话已结束：",
    callFailed: "通话失败：", transferred: "已转办", keyHelp: "快捷键：Alt+1 示闲 · Alt+2 小休 · Alt+3 离线 · 来电时 Enter 接听 / Esc 拒绝 · Alt+E 结束办理 · Alt+W 完成整理",
    // banners and errors, in plain words
    errNetwork: "网络连接异常，请检查网络后重试。", errLink: "与服务器的连接已断开，正在重新连接…",
    errLogin: "用户名或密码不正确。", errExpired: "登录已过期，请重新登录。", errConflict: "操作未成功：状态已经变化，请看当前状态。",
    errMedia: "视频服务暂时不可用，请稍后再试。", errDesk: "柜员服务未启动，请联系管理员。",
    errForbidden: "当前账号没有柜员权限。", errNoProfile: "尚未为您设置柜员业务技能，请联系主管。", errCamera: "无法打开摄像头或麦克风，请检查设备。",
    errVideo: "视频连接中断，正在等待恢复…", errPeerGone: "客户端网络中断，正在等待客户重新连接…", errJoin: "视频接通失败，请结束本次办理后重试。",
    errIncomplete: "还有步骤未完成，不能选择“办结”。", errRejected: "有步骤未通过，不能选择“办结”。", errData: "客户屏通道未连接，暂时无法推送。",
    errGeneric: "操作失败：", errSecondPerson: "此步骤需要主管本人授权。",
    s_requested: "发起", s_queued: "排队", s_offered: "分配柜员", s_connected: "接通", "s_wrap-up": "整理",
    s_closed: "结束", s_abandoned: "客户离开", s_failed: "失败", s_transferred: "转办",
  },
  en: {
    brand: "Cuntong · Teller desk", brandSub: "Remote video banking · teller seat", langSwitch: "中文",
    username: "Username", password: "Password", login: "Sign in", logout: "Sign out", loginTitle: "Teller sign-in",
    loginHint: "Sign in with your teller account.", available: "Available", break: "Break", offline: "Offline", busy: "In call", "wrap-up": "Wrap-up",
    stateLabel: "Status", idleAvailable: "Available, waiting for a customer…", idleBreak: "On break: no calls will come in",
    idleOffline: "Offline. Choose “Available” to take calls", idleOrphan: "The page was reloaded: this call's video cannot come back. Use “End session”.", rejoining: "Rejoining the call…", incoming: "Incoming customer", accept: "Accept", decline: "Decline",
    secondsLeft: "s before it goes to another teller", elderly: "Elderly customer", business: "Business", language: "Language", terminal: "Terminal",
    customer: "Customer", name: "Name", idNumber: "ID number", waited: "Waited", seconds: "s",
    idPhoto: "ID photo", idPhotoNone: "shown after the ID read (during the call only, never kept)", idPhotoMismatch: "photo does not match the terminal's signature: not shown",
    idRead: "ID card", idReadFirst: "read before queueing (terminal signature verified)", useIdRead: "Use the ID read before queueing",
    liveness: "Liveness", livenessPending: "waiting for the terminal", passed: "passed", notPassed: "failed", score: "score",
    history: "History", noCustomer: "No customer", workflow: "Steps", stepDone: "Done", needsSupervisor: "Needs a supervisor (second person)",
    waitingSupervisor: "Waiting for the supervisor…", workflowElsewhere: "This session's steps are kept by the teller who transferred the customer.", needsLiveness: "Waiting for the liveness result", needsSignature: "Ask for a signature first",
    needsVoucher: "Capture the voucher first", failStep: "Fail", askTerminal: "Ask the terminal", runCheck: "Check online",
    byTerminal: "Done and signed by the terminal; passes once the result verifies", byCloud: "The cloud checks the signed ID read online", asked: "Asked the terminal, waiting…",
    checking: "Checking online…", overridden: "Overridden by supervisor", tools: "Customer screen", pushForm: "Push a form", formConfirm: "Confirm business",
    formRisk: "Risk notice", formCard: "Choose a card", captureId: "Capture ID card", captureVoucher: "Capture voucher", askSign: "Ask for signature",
    screenSync: "Sync customer screen", screenTitle: "Title", screenText: "Text shown", send: "Send", replies: "Customer replies",
    answerTo: "Reply to", signature: "E-signature", documents: "ID card and vouchers", id_card: "ID card", voucher: "Voucher",
    transfer: "Transfer", hangUp: "Hang up", endCall: "End session", outcome: "Outcome", outcomeDone: "Completed",
    outcomeNotDone: "Not completed", outcomeTransfer: "Transfer", notes: "Notes", notesPh: "What was done, what the customer asked",
    transferTo: "Transfer to", transferLanguage: "Language", confirm: "Confirm", cancel: "Cancel", wrapUp: "Wrap-up",
    wrapLeft: "s until wrap-up ends by itself", wrapDone: "Wrap-up done", outcomeSaved: "Outcome recorded",
    recordOutcome: "Record the outcome", callTime: "Call time", selfView: "Me", remoteWaiting: "Waiting for the customer's video…",
    yes: "yes", no: "no", sent: "Sent", formSent: "Form pushed: ", signRequested: "Signature requested",
    captureRequested: "Capture requested: ", offerWithdrawn: "Call withdrawn: ", guestJoined: "Supervisor listening in: ", guestLeft: "Supervisor left: ", watching: "Listening in: ", callEnded: "Call ended: ",
    callFailed: "Call failed: ", transferred: "Transferred", keyHelp: "Keys: Alt+1 available · Alt+2 break · Alt+3 offline · on a call offer Enter accepts / Esc declines · Alt+E end session · Alt+W wrap-up done",
    errNetwork: "Network problem: check the connection and try again.", errLink: "Lost the connection to the server, reconnecting…",
    errLogin: "Wrong username or password.", errExpired: "Your sign-in expired; please sign in again.", errConflict: "That did not work: the state changed; see the current state.",
    errMedia: "The video service is unavailable; try again shortly.", errDesk: "The teller service is not running; call the administrator.",
    errForbidden: "This account has no teller role.", errNoProfile: "No teller skills are set for you yet; ask your supervisor.", errCamera: "Cannot open the camera or microphone; check the devices.",
    errVideo: "Video interrupted, waiting for it to recover…", errPeerGone: "The customer's terminal dropped; waiting for it to reconnect…", errJoin: "Video could not connect; end this session and try again.",
    errIncomplete: "Steps are still open: “Completed” is not possible yet.", errRejected: "A step failed: “Completed” is not possible.", errData: "The customer screen link is not up yet.",
    errGeneric: "Failed: ", errSecondPerson: "This step needs the supervisor in person.",
    s_requested: "requested", s_queued: "queued", s_offered: "offered", s_connected: "connected", "s_wrap-up": "wrap-up",
    s_closed: "closed", s_abandoned: "customer left", s_failed: "failed", s_transferred: "transferred",
  },
};

// Step names (cloud/workflow/catalogue.py STEPS) and language names; business names come
// from the server's catalogue (GET /teller/businesses).
export const STEPS = {
  zh: {
    dual_recording: "双录开始并告知客户", id_card_read: "读取二代身份证", id_online_check: "公民身份联网核查", face_match: "人证比对",
    liveness: "静默活体检测", active_liveness: "动作活体检测", card_read: "读取银行卡", pin_entry: "客户输入密码",
    voucher_capture: "凭证拍照", e_signature: "客户电子签名", supervisor_authorisation: "主管授权",
  },
  en: {
    dual_recording: "Start dual recording, inform the customer", id_card_read: "Read the ID card",
    id_online_check: "Online identity check", face_match: "Face against ID photo", liveness: "Passive liveness", active_liveness: "Active liveness",
    card_read: "Read the bank card", pin_entry: "Customer PIN entry", voucher_capture: "Capture the voucher",
    e_signature: "Customer e-signature", supervisor_authorisation: "Supervisor authorisation",
  },
};

export const LANGUAGES = {
  zh: { cmn: "普通话", "zh-shaanxi": "陕西话", "zh-sichuan": "四川话", csl: "中国手语", ug: "维吾尔语", bo: "藏语", ii: "彝语", mn: "蒙古语" },
  en: { cmn: "Mandarin", "zh-shaanxi": "Shaanxi dialect", "zh-sichuan": "Sichuan dialect", csl: "Chinese Sign Language", ug: "Uyghur", bo: "Tibetan", ii: "Nuosu (Yi)", mn: "Mongolian" },
};

// The supervisor's watch page (teller-watch.html).
export const WATCH = {
  zh: {
    watchBrand: "村村通 · 主管旁听", watchSub: "进行中的视频柜员通话", langSwitch: "English", logout: "退出",
    watchLogin: "主管登录", account: "账号", password: "密码", login: "登录", errLogin: "登录失败：",
    liveCalls: "进行中的通话", business: "业务", teller: "柜员", terminal: "终端", duration: "时长", listeners: "旁听",
    noCalls: "暂无进行中的通话", listening: "正在旁听", listen: "旁听", elderly: "老年客户",
    watchNote: "只看只听：客户和柜员都会收到“主管旁听”的提示，旁听记入审计和该笔业务的证据时间线。",
    customerSide: "客户", tellerSide: "柜员", leave: "离开旁听", errList: "读取通话列表失败：",
    watchOver: "通话已结束或已转接，旁听结束。", errWatch: "无法旁听：",
    steps: "办理步骤", showSteps: "步骤", stepsOf: "办理步骤", stepDone: "已通过", stepFailed: "未通过", stepNext: "待办",
    stepLater: "未开始", overridden: "主管越权通过", overrideReason: "越权理由（必填，记入审计与证据）",
    override: "主管越权通过", overrideHint: "仅在终端设备故障或缺失时使用；本笔业务将进入全面质检。",
    errOverride: "越权未成功：", errSteps: "读取办理步骤失败：", noWorkflow: "柜员尚未开始办理步骤", closeSteps: "关闭",
  },
  en: {
    watchBrand: "Cuntong · Listening in", watchSub: "Video teller calls in progress", langSwitch: "中文", logout: "Sign out",
    watchLogin: "Supervisor sign-in", account: "Username", password: "Password", login: "Sign in", errLogin: "Sign-in failed: ",
    liveCalls: "Calls in progress", business: "Business", teller: "Teller", terminal: "Terminal", duration: "Duration", listeners: "Listening",
    noCalls: "No calls in progress", listening: "Listening in", listen: "Listen in", elderly: "elderly customer",
    watchNote: "Watch and listen only: the customer and the teller are both told a supervisor is listening; it goes into the audit log and the session's evidence timeline.",
    customerSide: "Customer", tellerSide: "Teller", leave: "Stop listening", errList: "Could not read the calls: ",
    watchOver: "The call ended or was transferred; listening stopped.", errWatch: "Cannot listen in: ",
    steps: "Steps", showSteps: "Steps", stepsOf: "Steps of the session", stepDone: "passed", stepFailed: "failed", stepNext: "next",
    stepLater: "not yet", overridden: "Overridden by supervisor", overrideReason: "Reason for the override (required; audited and kept as evidence)",
    override: "Override", overrideHint: "Only when the terminal's device failed or is missing; the session goes to full quality review.",
    errOverride: "Override refused: ", errSteps: "Could not read the steps: ", noWorkflow: "The teller has not started the steps yet", closeSteps: "Close",
  },
};
