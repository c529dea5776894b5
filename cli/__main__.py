from crmkit_cli.main import main

main()
