from assetdb.cli.main import cli

cli(prog_name="assetdb")
