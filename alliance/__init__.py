"""The alliance's own mechanisms: needs (需求征集), projects by quarter (项目化运作), the
November summary (评议激励)."""
