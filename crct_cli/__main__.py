"""``python -m crct_cli`` runs the same app as the ``crct`` console script."""

from crct_cli.cli import app

if __name__ == "__main__":
    app(prog_name="crct")
