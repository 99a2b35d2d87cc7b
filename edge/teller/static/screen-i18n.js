// The customer screen's own words in Chinese (default) and English, registered with the
// shared i18n (/ui/i18n.js: current language, then zh, then the key). What the agent sends
// in /state (the status sentence, the business menu, pushed forms) comes already worded in
// Chinese by edge/teller/view.py, so the screen offers no language switch: English shows
// only where this browser's "cuntong.lang" says so, and then only for these labels. The
// spoken prompts (and the sentences shown with them) come from the prompt catalogue,
// edge/teller/prompts.py, sent in /state: "trouble" here is only for a page that never
// reached the agent at all.
// No DOM here: tests import this module in node to check both languages have every key.

export const STRINGS = {
  zh: {
    title: "视频柜员", connecting: "正在连接…", start: "视频柜员", chooseTitle: "您要办什么业务?",
    choose: "请选择业务", back: "返回", cancel: "不等了", tellerVideo: "柜员的画面", selfVideo: "您自己的画面",
    hangup: "结束通话", submit: "提交", formTitle: "请确认", yesConfirm: "是,确认", no: "否",
    signHere: "请在下面签名", clear: "重写", signed: "确认签名", skip: "不评了",
    trouble: "终端出了点问题,请稍候", again: "再听一遍", elderly: "我已满 60 岁", readId: "先刷身份证", reading: "正在读卡…",
    score5: "非常满意", score4: "满意", score3: "一般", score2: "不满意", score1: "很不满意",
  },
  en: {
    title: "Video teller", connecting: "Connecting…", start: "Video teller", chooseTitle: "What would you like to do?",
    choose: "Please choose a service", back: "Back", cancel: "Stop waiting", tellerVideo: "The teller", selfVideo: "You",
    hangup: "End the call", submit: "Submit", formTitle: "Please confirm", yesConfirm: "Yes, confirm", no: "No",
    signHere: "Please sign below", clear: "Clear", signed: "Confirm signature", skip: "Skip",
    trouble: "The terminal has a problem; please wait", again: "Say it again", elderly: "I am over 60", readId: "Read my ID card first", reading: "Reading…",
    score5: "Very satisfied", score4: "Satisfied", score3: "Neutral", score2: "Unsatisfied", score1: "Very unsatisfied",
  },
};
