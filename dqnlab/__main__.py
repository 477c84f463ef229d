from dqnlab.cli.main import run

run()
