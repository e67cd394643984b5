from cllm_app.cli import main

main()
