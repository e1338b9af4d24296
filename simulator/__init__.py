"""Talk to the bot the way WeChat does, without a WeChat account: signed XML to /wechat."""
