"""What a question asks for (when, where, how many …) and what an answer can tell.

A confident lexical match is still wrong when the member asks "在哪家医院" and the entry
only says which month: such a question is declined, not answered with the month.
"""
from __future__ import annotations

import re

_NUMERAL = r"[两二三四五六七八九十]|\d+"
ASKS: dict[str, re.Pattern] = {
    "where": re.compile(r"(?<![跟和与同])哪里|哪儿|在哪(?![个些一两几])|去哪(?![个些一])|[在去]哪家|哪家(?=医院|酒店|宾馆|饭店|餐厅|景点|旅行社)|什么地方|啥地方|"
                        r"哪个城市|哪座城市|哪个地方|地点|地址|场地|哪能看|哪里看|几楼|哪个教室|哪个街道|哪条路|"
                        r"哪个酒店|哪个场馆|哪条|路线|哪所|哪些地方|具体地点|哪个医院|哪家医院|"
                        r"线上还是线下|在哪儿|哪个市|哪个省|哪座城市|会议室|哪个厅"),
    "clock": re.compile(r"几点(?![零0-9几])|什么时间点|几时开始|几点钟"),
    "weekday": re.compile(r"每周几|星期几|周几|礼拜几"),
    "money": re.compile(r"多少钱|怎么算|咋算|费用|加班费|发多少|能报多少|报多少|赔多少|给多少钱|面值|面额|标准是多少|报销|工资|薪资|待遇|补贴|金额|几块钱|奖金|房租|租金|"
                        r"会费|团费|党费|罚多少|年终奖|绩效奖|学费|保费|月租|租金|收费伐|余额|总额|出钱|自费|报销多少|"
                        r"多少[\u4e00-\u9fa5]{0,4}(?:经费|费用|资金|补贴|奖金|预算)|(?:经费|预算)(?:是|有)?多少"),
    "procedure": re.compile(r"(?:怎么|怎样|如何|咋)(?:报名|办理|申请|参加|加入|领取|领|走|去|交|补办|补|弄|预约|登记)|"
                            r"流程|手续|要带什么|需要带|什么条件才能|去哪领|找谁|"
                            r"(?:怎么|怎样|如何|咋)(?:投票|投稿|理赔|申报|参评|参赛|提交|推荐|入选|选拔|评上|评定|认定|联系|开通|查|登录|注册|激活|使用|提取|绑定)|"
                            r"填什么表|什么表格"),
    "person": re.compile(r"(?:队长|组长|主任|局长|书记|负责人|联系人|对接人)(?:是谁|叫啥|叫什么)|"
                         r"哪位领导|对接人|联系人|评上的是谁|评上了谁|都是谁|"
                         r"(?:书记|队长|主任|局长|负责人|委员)叫什么|(?:人|标兵|队长|典型|先进|个人|获得者)(?:都有谁|有哪些)"),
    "contact": re.compile(r"电话|号码|联系方式|手机号|邮箱|微信号|网址|链接|二维码|公众号是"),
    "item": re.compile(r"[发送领](?:的|了)?是?些?(?:什么|啥)(?!时候|时间|季度|月)|送什么|什么礼物|啥礼物|礼品|领什么|发啥|送啥|饮料|电影票|送的是什么|发的是什么|"
                       r"[发送领]什么东西|[发送领]啥东西|慰问金|购物卡|什么菜|菜单|[发送领奖]些(?:什么|啥)|奖品|奖啥|什么奖励|啥奖励|"
                       r"有奖励吗|奖励是什么|奖励是啥"),
    "count": re.compile(r"多少(?!钱)|(?<!哪)(?:几[张本件块辆盒箱袋瓶]|几个|几家|几次|几项|几名|几篇|几人|几位|几届|几期|几所|几条|几类|几场|几份|几起|几套)"),
    "ordinal": re.compile(r"第几(?!季度|个季度|个月|月|年)"),
    "when": re.compile(r"什么时候|啥时候|何时|几月|哪个月|哪月|几号|哪天|哪一天|几季度|哪个季度|什么时间|啥时间|日期|哪年|几时"),
    "month": re.compile(r"几月到几月|哪几个月|几月份|哪个月|哪月|几月(?!底|初)"),
    "duration": re.compile(r"几年|多少年|几天|多少天|多久|多长时间|几个小时|几小时|几节课|几周|几个月|多少个小时"),
    "permission": re.compile(r"能带|可以带|能不能带|带家属|带孩子|带小孩|家属能|家属可以|能线上|可以线上|"
                             r"收费吗|免费吗|要钱吗|要不要钱|收不收费|要交钱|几岁|年龄|多大的|能请假|算不算加班|"
                             r"能报销|可以报销|发不发|有没有补贴|有补贴|算工作时间|算加班|能调休|可以调休|"
                             r"(?:能不能|可不可以)(?:报名|参加|申请|买|给|加入|去|享受)|"
                             r"(?:能|可以)(?:报名|参加|申请|买|给|加入|去|享受)[^，。]{0,10}吗"),
    "rate": re.compile(r"合格率|及格率|通过率|完成率|覆盖率|比例|百分之几|百分比|占比|率是多少|率[^，。]{0,8}多少"),
    "score": re.compile(r"多少分|几分(?!之)|及格线|分数线|合格线|passmark|passline|过线"),
    "result": re.compile(r"有几人获奖|几人获奖|评上了几|评上几|几个评上|获奖了吗|实际|最后|最终|评上|谁拿了|"
                         r"拿了第一|第一名|冠军|获奖|名单|拿到[^，。]{0,6}没|拿没拿|评上没|"
                         r"效果怎样|效果如何|效果怎么样|结果如何|结果怎样|发现了多少|"
                         r"谁获得|得主|结果出来|出来了吗"),
    "exam": re.compile(r"考什么|考哪些|考试内容|题库|笔试还是面试|面试还是笔试|考试范围|考啥"),
    "requirement": re.compile(r"(?:什么|啥)(?:具体)?(?:条件|标准|资格)|(?:条件|标准|资格)具体(?:是什么|是啥|有哪些)|"
                             r"招募条件|申请条件|什么条件|条件是什么|要什么条件|需要什么资格|资格要求|执照|证书|门槛|"
                             r"报名条件|评定标准|评选标准|考核标准|评分标准|标准是什么|标准是啥|考核指标|指标是|"
                             r"评星标准"),
    "person_name": re.compile(r"(?:现在|目前|现任|下一任|下任|新任|这届|本届)的?[\u4e00-\u9fa5]{0,8}(?:是谁|叫啥|叫什么)|"
                              r"(?:书记|负责人|秘书长|召集人|队长|主任|局长|组长|联系人|对接人)(?:叫啥|叫什么|的名字|名字|姓啥|姓什么)|"
                              r"名单|(?:人|标兵|队长|先进|获奖者|典型)都有谁|谁拿了|评上了谁|评上的是谁|"
                              r"(?:区局|区|局|处|中队|大队)的?[\u4e00-\u9fa5]{0,6}(?:负责人|书记|队长|主任|局长)是谁|"
                              r"主席是谁|主席叫|哪位同志|主席是哪位|哪些人[获评得]|表彰了哪些|评上了哪些|"
                              r"(?:新的|新任|换届后)[\u4e00-\u9fa5]{0,6}是谁"),
    "name": re.compile(r"分别是哪|具体是哪|具体有哪些|是哪几[所个家位]|都是哪些|都有哪些|都有哪几|"
                      r"哪些(?:区|学校|高校|大学|社区|街道|中队)(?![局级])|"
                      rf"哪(?:{_NUMERAL})[个所家位项条类种批户名块]|是哪(?:{_NUMERAL})(?![年月天季周])|哪几[类种块]|列一下|列出来"),
    "consequence": re.compile(r"没修满|修不满|没完成|完不成|没达到|达不到|不达标|没参加|不参加|不交流|没交流|会怎么样|"
                             r"会怎么处理|会怎么办|会扣|扣绩效|扣分|有什么后果|什么后果|会被处分|处分吗|怎么处罚|"
                             r"怎么罚|罚多少|会不会罚|最后怎么处理"),
    "compare": re.compile(r"多还是少|高还是低|比[^，。]{1,10}(?:多|少|高|低)了?吗|有没有增加|增加了吗|下降了吗|"
                          r"增长了多少|增加了多少|同比"),
    "rank": re.compile(r"最多(?!.{0,4}(?:几|多少))|最少(?!.{0,4}(?:几|多少))|最高|最低|最大|最强|更高|排名|排第几|评比第一|哪个.{0,6}第一|谁第一|前三"),
    "meaning": re.compile(r"(?:什么|啥)意思|指的?是?(?:什么|啥)|具体指|是啥东西|是什么东西|啥叫|什么叫|是指什么|"
                          r"(?:具体)?(?:是)?(?:干啥|干什么|做什么|做啥)的|具体(?:负责)?(?:干|做|搞)(?:什么|啥)|"
                          r"主要改了|具体改了|具体包括哪些|具体收回哪些"),
    "person_detail": re.compile(r"[\u4e00-\u9fa5]{2,3}(?:委员|同志)(?:是|来自|在)?(?:哪个|哪一?|什么)|(?:委员|同志)的(?:单位|职务|界别|身份)"),
    "since": re.compile(r"哪一?年开始|什么时候开始(?:实施|执行|施行|开展|试行)|从什么时候开始|"
                        r"哪一?年(?:发布|出台|印发|启动|成立|试行|建立)|什么时候(?:正式)?(?:发布|出台|印发|施行|成立)"),
    "rest": re.compile(r"(?:除了|除去|除)[^，。]{1,30}(?:另外|其余|其他|还有|以外|之外)|(?:另外|其余)(?:的)?[\d一二三四五六七八九十]*[个项件条所家类]"),
    "award": re.compile(r"获奖|评上|得奖|拿奖|获评|拿到.{0,4}奖"),
    "future": re.compile(r"明年|下一年|后年|下一届|下届|下次|下一次|2027|2028"),
    "date": re.compile(r"哪天|截止时间|截止报名|报名截止|什么时候截止|几号截止|具体什么时候|具体几号|具体哪天|哪一天|几号|哪一周|具体日期|哪个星期|具体时间"),
    "who": re.compile(r"谁|哪个单位|哪些单位|哪家单位|哪个部门|哪些部门|哪个处|哪些处|牵头|负责|领头|主办|哪个工会|哪些工会"),
}

# asked kinds an entry must explicitly cover; the others are soft
STRICT = ("person_detail", "since", "award", "compare", "rank", "where", "clock", "weekday", "money",
          "item", "count", "ordinal", "when", "month", "procedure",
          "consequence",
          "person", "contact", "duration", "permission", "score", "result", "date", "future", "exam",
          "requirement", "name", "rate", "person_name")

_MEASURE = ("个|名|人|起|次|篇|家|项|份|场|套|辆|件|块|期|所|户|张|条|类|学时|学分|平方米|万|亿|%|％|"
            "余|届|支|批|周年|大|本|号|佳")
_HAS = {
    "when": re.compile(r"\d{1,2}月|[一二三四]季度|\d{4}年|\d+日|全年|每年|每季度|年底|年初|月底|上半年|下半年|"
                       r"暑期|寒假|暑假|春节|国庆|五一|两节|[一二三四五六七八九十]+月"),
    "month": re.compile(r"\d{1,2}月|[一二三四五六七八九十]+月|季度|全年|每月|每年|上半年|下半年|年底|年初|暑期|"
                        r"寒假|暑假|春节|国庆|五一|两节|年中|常态"),
    "count": re.compile(rf"(?<!第)(?:\d[\d.,，万]*\s*(?:{_MEASURE})|[一二两三四五六七八九十百千]+(?:{_MEASURE}))|\d+-\d+"),
    "ordinal": re.compile(r"第[一二三四五六七八九十百\d]+"),
    "where": re.compile(r"地点|位于|会场|场馆|省|县|镇|街道|园区|软件园|湾城|赴|前往|"
                        r"(?<![上海本全城])市(?![局级委容民场区属总直])|(?:在|于|到)[^，。；季月年]{0,12}?(?:市|县|镇|街道|路|馆|基地|公园|"
                        r"大厦|酒店|学校|大学|高校|公众号|网站|平台|版块|专栏|app|APP|课堂)"),
    "clock": re.compile(r"\d{1,2}[:：点]\d{0,2}"),
    "weekday": re.compile(r"周[一二三四五六日天]|星期[一二三四五六日天]"),
    "money": re.compile(r"\d+(?:\.\d+)?\s*(?:元|万元|块)"),
    "item": re.compile(r"(?:礼品|礼物|慰问品|奖品|奖励)(?:为|是|包括|有|：)|发放[^，。；、]{1,8}(?:卡|券|金|品|物|票)|"
                       r"购物卡|电影票|慰问金|奖金|证书|奖杯|月饼|粽子|饮品|饮料"),
    "person_detail": re.compile(r"(?:委员|同志)（[^）]+）|来自[^，。；]{2,}的"),
    "since": re.compile(r"\d{4}年[^。；]{0,30}(?:起|以来|开始|启动|印发|发布|出台|成立|试行)|"
                        r"(?:起|以来|开始|启动|印发|发布|出台|成立|落款)[^。；]{0,30}\d{4}年"),
    "award": re.compile(r"获得|荣获|获评|获奖|评为|当选|入选|授予|表彰|评出|评选出"),
    "rank": re.compile(r"位居|前列|第一|最[多高大好少低]|排名|领先|首位|首创|靠前"),
    "compare": re.compile(r"同比|比上年|较上年|比\d{4}年|增长|下降|减少|翻番|增加了"),
    "consequence": re.compile(r"处分|处罚|扣[除减分]|追究|问责|取消|通报|约谈|不得|影响"),
    "who": re.compile(r"处|局|工会|团组织|单位|委员会|团委|团工委|部门|书记|负责|牵头"),
    "procedure": re.compile(r"报名方式|报名渠道|流程|手续|申请方式|办理方式|登录|扫码|联系所在|向所在"),
    "person": re.compile(r"担任|负责人为|委员(?!会)|主任|局长|召集人"),
    "contact": re.compile(r"\d{7,}"),
    "duration": re.compile(r"(?<!\d)\d{1,2}\s*(?:天|小时|课时|学时|周|个月|年)|[一二三四五六七八九十两]+(?:天|小时|周|个月|年)|"
                           r"每[年季月周天]"),
    "permission": re.compile(r"可以带|允许|不得|不能|免费|自愿|须|必须|限|可视情|均可|可以参加|可参加"),
    "score": re.compile(r"\d+\s*分(?!钟|之)"),
    "rate": re.compile(r"\d+(?:\.\d+)?\s*[%％]|百分之"),
    "result": re.compile(r"完成|已|累计|共计|实现|达到|获得|荣获|获评|获奖|评为|评出|拆除|查处|办结|受理|采纳|推报|获得|成功"),
    "exam": re.compile(r"考试内容|科目|题库|笔试|面试"),
    "requirement": re.compile(r"条件|资格|具备|选拔一批“"),
    "name": re.compile(r"(?:[^、，。；]+、)+[^、，。；]+|[\u4e00-\u9fa5]{2,3}委员、|(?:“[^”]{1,20}”[^“。；]{0,3}){2,}|"
                       r"一是.{2,}二是|（一）.{2,}（二）|（1）.{2,}（2）|①.{1,}②|[^。；]{4,}；[^。；]{4,}"),
    "person_name": re.compile(r"[\u4e00-\u9fa5]{2,3}委员|[\u4e00-\u9fa5]{2,3}同志"),
    "future": re.compile(r"计划|每年|全年|每季度|将|拟|项目清单|安排在|常态|长期"),
    "date": re.compile(r"\d{1,2}月(?:底|初|中旬|上旬|下旬)|\d{1,2}[·.]\d{1,2}|\d{1,2}月\d{1,2}日|\d+日|\d+号|第[一二三四五\d]周"),
}
_SILENT_VERB = r"(?:未|没有|没)(?:逐项|一一|具体)?(?:写|说明|提及|提到|明确|列出|给出|载明|规定|公布|展开)"
_SILENT = _SILENT_VERB + r"|没说|并未|不涉及|没有具体|未作|没有作|暂无|只提到|只点了"
_NOT_STATED = re.compile(rf"[^。；\n]*(?:{_SILENT})[^。；\n]*[。；]?")


_PLAN = re.compile(r"计划|将|拟|目标|力争|要求|准备")
_DONE = re.compile(r"完成|已|累计|实现|共计")


def asked(question: str) -> set[str]:
    """Kinds of answer the (normalised) question asks for."""
    kinds = {kind for kind, pattern in ASKS.items() if pattern.search(question)}
    if "money" in kinds:
        kinds.discard("count")
    if "ordinal" in kinds:
        kinds.discard("count")
    counted = _ASKED_SET.search(question)
    which = _WHICH.search(question, counted.end()) if counted else None
    if which and "count" not in kinds and which.start() - counted.end() <= 10 and not re.search(
            r"由|负责|谁|让|给|对", question[counted.end():which.start()]):
        kinds.add("name")  # "那80个基层党组织是哪些单位": the members of a counted set
    return kinds


def stated(answer: str) -> str:
    """The answer without its 'the document does not say X' sentences (they answer nothing)."""
    return _NOT_STATED.sub("", answer)


def covered(answer: str, declared: list[str] | None = None) -> set[str]:
    """Kinds an answer can answer: declared in the data, plus what its text shows."""
    text = stated(answer)
    kinds = {kind for kind, pattern in _HAS.items() if pattern.search(text)}
    if "result" in kinds and _PLAN.search(text) and not _DONE.search(text):
        kinds.discard("result")  # "2024年计划拆除480块" is a target, not what happened
    for kind in declared or []:
        if kind in STRICT and not _HAS[kind].search(text):
            continue  # a declared 'where' with no place in the text is a slip, not a fact
        kinds.add(kind)
    return kinds


def missing(question_kinds: set[str], entry_kinds: set[str]) -> set[str]:
    return {k for k in question_kinds if k in STRICT and k not in entry_kinds}


_ASKED_MEASURE = re.compile(r"(?:几|多少)(个人(?![\u4e00-\u9fa5]{0,3}(?:案件|信息|事项))|名|人|位|张|次|场|天|"
                            r"公里|平方米|所|家|篇|起|件|块|期|户|条|支|批|届)")
_PEOPLE, _EVENTS, _PLACES = "人|名|位|人次", "次|场|期|批|届|轮", "所|家|个"
_SAME_MEASURE = {"个人": _PEOPLE, "人": _PEOPLE, "名": _PEOPLE, "位": _PEOPLE, "次": _EVENTS, "场": _EVENTS,
                 "期": _EVENTS, "批": _EVENTS, "届": _EVENTS, "所": _PLACES, "家": _PLACES}


_TWO = re.compile(r"哪两|两个是|两家是|两位是")
_PAIR = re.compile(r"[^，。；、和与\d]{2,20}(?:和|与|以及|及)[^，。；、和与\d]{2,20}")


def pair_named(question: str, text: str) -> bool:
    """"是哪两家" is answered by "A和B" as well as by "A、B"."""
    return bool(_TWO.search(question) and _PAIR.search(text))


_ASKED_SET = re.compile(r"(\d+|[两三四五六七八九十]+)\s*(?:个|所|家|位|项|条|类|种|批|户|名|起|件|篇|本)(?![字词])")
_WHICH = re.compile(r"哪些|哪几|分别|都是|都有|是什么|有什么|是啥|叫什么|叫啥|是哪(?:[两二三四五六七八九十]|\d)")
_NAMED_AFTER = re.compile(r"^[^，。；]{0,16}?(?:：|（|即|包括|分别|是|为|有)")
_ITEMS = re.compile(r"[、；]")
_CN_DIGITS = {ch: n for n, ch in enumerate("零一二三四五六七八九十")} | {"两": 2}
_CN_FORMS = {n: (ch,) for ch, n in _CN_DIGITS.items() if n} | {2: ("二", "两")}


_LIST_TAIL = re.compile(r"(?:“[^”]{1,20}”[、和与及]?){2,}$|(?<!\d)(?:[^、\d“”等]{2,12}、)+[^、\d“”等]{2,12}$")


def _listed_before(text: str) -> bool:
    """"“开放日”“最美城管人”“局长接热线”三个品牌活动": the list runs up to the count."""
    clause = re.split(r"[，。；：]", text)[-1]
    return not clause.endswith("等") and bool(_LIST_TAIL.search(clause))  # "A、B等10项": some only


def enumerated(question: str, text: str) -> bool | None:
    """Whether the answer spells out the set asked for by its count ("那13所高校是哪几所"):
    where it names the set by that count, the members must follow or precede it there;
    elsewhere a list about as long must appear. None: the question names no count."""
    m = _ASKED_SET.search(question)
    if not m:
        return None
    n = int(m.group(1)) if m.group(1).isdigit() else _CN_DIGITS.get(m.group(1)[-1], 2)
    unit = m.group(0)[len(m.group(1)):]
    spelled = "|".join(dict.fromkeys([m.group(1), str(n), *_CN_FORMS.get(n, ())]))
    found = list(re.finditer(rf"(?<![\d一二两三四五六七八九十百])(?:{spelled})\s*{re.escape(unit)}", text))
    if found:  # the entry names the set by its count ("两个评价模型"): is it spelled out there?
        return any(_NAMED_AFTER.search(text[k.end():]) or _listed_before(text[:k.start()])
                   for k in found)
    longest = max((max(len(_ITEMS.findall(s)) + 1, s.count("“")) for s in re.split(r"[。\n]", text)
                   if not re.search(r"[”\w]等", s)), default=1)  # "A、B等十项" lists some only
    return longest >= min(n, 6) or (n == 2 and bool(_PAIR.search(text)))


_CHOICE = re.compile(r"([\u4e00-\u9fa5a-z0-9]{2})还是(?:是|做|去|在|要|选|用|算)?([\u4e00-\u9fa5a-z0-9]{2})")


_EXPLAINS = re.compile(r"^[^。；]{0,8}?(?:是|即|指|：|（|包括|分别|意思|就是|也就是|意为)")


def explained(question: str, text: str) -> bool | None:
    """"两单两书是啥意思", "社区侠是干啥的": answered only where the entry says what the
    term means or does, not where it merely names it. None: not such a question, or the
    entry never names the term (the ranking decides then)."""
    ask = ASKS["meaning"].search(question)
    if not ask:
        return None
    head = question[:ask.start()]
    if not head and question.startswith(("啥叫", "什么叫")):
        head = question[2:] if question.startswith("啥叫") else question[3:]
    term = re.sub(r"^(?:这个|那个|请问)|(?:这个|那个|的|分别|具体|到底|究竟|取的|主要|都|是|负责|项目)+$", "",
                  head)[-8:]
    if len(term) < 2:
        return None
    text = re.sub(r"[“”‘’\"'+＋·\s]", "", text)  # as the normalised question reads
    for size in range(len(term), 1, -1):
        piece = term[-size:]
        spots = [m.end() for m in re.finditer(re.escape(piece), text)]
        if spots:
            return any(_EXPLAINS.search(text[k:k + 14]) for k in spots)
    return None  # the entry never names it: the ranking, not this check, decides


def choices(question: str) -> list[tuple[str, str]]:
    """"做视频还是做手册" -> (视频, 手册): an entry that names neither cannot say which."""
    return _CHOICE.findall(question)


_ORDINAL_ASKED = re.compile(r"第几([届期次批名轮项条部分个章节季度层]{1,2})?")
_NUMBERS = r"[一二三四五六七八九十百\d]+"


def ordinal_in(question: str, text: str) -> bool:
    """"第几期了" is answered by "第三期", not by the document's "第三部分": an ordinal in the
    unit asked, or, asked without one, an ordinal that is not the document's own structure."""
    m = _ORDINAL_ASKED.search(question)
    if not m:
        return True
    if m.group(1):
        return bool(re.search(rf"第{_NUMBERS}（?{m.group(1)[0]}", text))
    return bool(re.search(rf"第{_NUMBERS}(?!{_NUMBERS}|部分|项|条|个|章|节|层面|段)", text))


_CLAUSES = re.compile(r"[，。；：\n]")
_FIGURE = re.compile(r"\d[\d.,，万]*\s*(?:%|％|[^\d\s，。；、]{1,2})|[一二两三四五六七八九十百千]+(?:个|名|起|次|家|项|件|所|户)")


def figure_near(text: str, names: list[str]) -> bool:
    """"2023年普陀查处了多少起": a figure in a clause that names 普陀; the system-wide total
    in the same entry is not 普陀's."""
    return any(name in clause and _FIGURE.search(clause)
               for clause in _CLAUSES.split(text) for name in names)


_WHICH_NOUN = re.compile(r"(?:哪些|哪几个|哪几)(?![列是有在要会能可已被都还给让])([\u4e00-\u9fa5]{2,4}?)"
                         r"(?=$|[是有的在要会能可已被都还呢吗啊呀]|已经)")
# what any list answers: "包括哪些内容", "有哪些项目"
_GENERIC_NOUN = re.compile(r"内容|方面|东西|情况|事情|项目|活动|工作|措施|举措|安排|要求|形式|方式|任务")
_LIST_CLAUSE = re.compile(r"[^，。；：（）]*、[^，。；：（）]*")


def listed_near(question: str, text: str) -> bool | None:
    """"哪些中队试点": a list in the entry must be a list of that kind of thing, in a clause
    that names it (…中队) or whose items end like it (虹口、徐汇、静安区局). None: no such noun."""
    m = _WHICH_NOUN.search(question)
    if not m or _GENERIC_NOUN.search(m.group(1)):
        return None
    noun = m.group(1)
    for clause in _LIST_CLAUSE.findall(text):
        if noun in clause or noun[-1] in clause:
            return True
    return False


def measures(question: str) -> list[str]:
    """The units a count question counts in ("能去几个人" -> 人): a number in another unit
    ("第5项") does not answer it."""
    return [_SAME_MEASURE.get(m, m) for m in _ASKED_MEASURE.findall(question)]


def counts_in(text: str, measure: str) -> bool:
    ordinal_ok = "" if measure == _EVENTS else "(?<!第)"  # 举办过几届: 第九届 answers it
    return bool(re.search(rf"{ordinal_ok}(?:\d[\d.,，万]*|[一二两三四五六七八九十百千]+)\s*(?:余|多)?(?:{measure})",
                          text) or re.search(r"(?<!第)[十百千\d]+大", text))  # 十大赛道: ten of them


_MARKER = re.compile(_SILENT_VERB)
_PIECES = re.compile(r"[和、及与，,或/]|以及")
# what a question asks for, in the words the data uses when it says a document is silent on it
FACET_TERMS = {"where": ("地点", "路线", "院校", "机构", "场地", "地址"), "date": ("日期", "具体时间"),
               "clock": ("时间",), "count": ("名额", "人数", "年限"), "money": ("租金", "费用", "金额", "标准"),
               "requirement": ("条件",), "procedure": ("报名方式", "方式", "流程"), "item": ("物品", "礼品"),
               "person_name": ("人员", "名单", "姓名"), "duration": ("天数", "时长", "年限"),
               "name": ("名称", "名单", "内容"), "rest": ("全部", "其余", "其他", "名称", "名单")}


def unstated_terms(answer: str) -> set[str]:
    """What an answer says the document does not state ("清单没有写地点和名额" -> 地点, 名额):
    a question about exactly that is declined with what the document does say."""
    terms: set[str] = set()
    for sentence in _NOT_STATED.findall(answer):
        parts = _MARKER.split(sentence, maxsplit=1)
        if len(parts) < 2:
            continue
        for piece in _PIECES.split(re.split(r"[，。；,]", parts[1])[0]):
            piece = piece.strip().split("的")[-1].removeprefix("具体")
            if 2 <= len(piece) <= 6:
                terms.add(piece)
                terms.add(piece[-2:])  # 开课地点 -> 地点, 申请条件 -> 条件
    return terms
