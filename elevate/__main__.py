from elevate.cli.main import app

app()
