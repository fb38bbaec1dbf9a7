from churnlens.cli import app

app(prog_name="churnlens")
