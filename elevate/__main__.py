from elevate.cli import app

app()
